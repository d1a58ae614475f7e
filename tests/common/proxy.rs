//! A fault-injecting HTTP proxy on loopback, between reseal and an S3 server.
//!
//! It forwards HTTP/1.1 one request per connection: the request head is rewritten to
//! `Connection: close` (everything after the head, the body, is forwarded as it comes) and
//! the response head gets `Connection: close`, so that every request arrives on a new
//! connection and is seen here. For a deterministic share of the requests it answers
//! instead (see [`Faults`]): 503 SlowDown, 500 InternalError, a connection closed without
//! an answer (before or after the server got the request), or, for CopyObject, 200 with
//! an error body. It counts what it did, so that a test can check the faults happened,
//! and runs hooks before forwarding a key's CopyObjects and after their answers (to race
//! writes).
//!
//! Plain threads and blocking sockets: one thread accepts, one thread serves each
//! connection (and a second one copies its request body). The sockets have timeouts, so
//! nothing here waits forever.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy can answer instead of the server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// 503 with `<Error><Code>SlowDown</Code>…`; the server never sees the request.
    SlowDown,
    /// 500 with `<Error><Code>InternalError</Code>…`; the server never sees the request.
    InternalError,
    /// The connection is closed without an answer; the server never sees the request.
    Dropped,
    /// The request is forwarded and the server answers, but the connection is closed
    /// without passing the answer on: the request took effect and the client cannot know.
    LostResponse,
    /// CopyObject only: 200 OK whose body is `<Error><Code>InternalError</Code>…`, as S3
    /// sends when a copy fails after it started answering. The server never sees it.
    CopyError200,
}

/// Which requests get a fault. Requests (and CopyObjects) are numbered from 1 in the order
/// they arrive, from the start or from the last [`Proxy::set_faults`].
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every `every`-th request gets a fault (0: none), taking `kinds` in turn.
    pub every: u64,
    /// The kinds [`Faults::every`] takes in turn (never [`Fault::CopyError200`]).
    pub kinds: Vec<Fault>,
    /// Every `copy_error_every`-th CopyObject is answered 200 with an error body (0: none).
    pub copy_error_every: u64,
    /// Faults at most, all kinds together: past it every request is forwarded, so a run
    /// always gets through.
    pub max: u64,
}

impl Faults {
    /// The next `n` requests get a fault, taking `kinds` in turn; none after them.
    pub fn first(n: u64, kinds: &[Fault]) -> Faults {
        Faults {
            every: 1,
            kinds: kinds.to_vec(),
            copy_error_every: 0,
            max: n,
        }
    }
}

/// One request the proxy saw, and what it did with it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its number, from 1, in the order requests arrived.
    pub n: u64,
    pub method: String,
    /// Path-style: the first path segment, and the rest (percent-decoded).
    pub bucket: String,
    pub key: String,
    /// A PUT with an x-amz-copy-source header.
    pub copy: bool,
    pub fault: Option<Fault>,
    /// The server's status, where it answered (also for [`Fault::LostResponse`]).
    pub status: Option<u16>,
}

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    plan: Faults,
    /// Under the current plan: requests, CopyObjects, faults.
    requests: u64,
    copies: u64,
    planned_faults: u64,
    /// Since the start.
    total_requests: u64,
    faults: BTreeMap<Fault, u64>,
    forwarded: BTreeMap<String, u64>,
    seen: Vec<Seen>,
    /// Run before forwarding the first CopyObject of (bucket, key).
    copy_hooks: HashMap<(String, String), Hook>,
    /// Run before forwarding each of the next so many CopyObjects of (bucket, key).
    repeated_hooks: HashMap<(String, String), (u64, RepeatedHook)>,
    /// Run after the server answered a CopyObject of (bucket, key) with success, before the
    /// answer is passed on.
    after_copy_hooks: HashMap<(String, String), Hook>,
}

type RepeatedHook = Arc<dyn Fn() + Send + Sync>;

impl State {
    fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }

    /// Numbers the request and decides whether it gets a fault.
    fn decide(&mut self, copy: bool) -> (u64, Option<Fault>) {
        let plan = &self.plan;
        self.total_requests += 1;
        self.requests += 1;
        let n = self.requests;
        let room = self.planned_faults < plan.max;
        let mut fault = None;
        if copy {
            self.copies += 1;
            if room
                && plan.copy_error_every > 0
                && self.copies.is_multiple_of(plan.copy_error_every)
            {
                fault = Some(Fault::CopyError200);
            }
        }
        if fault.is_none() && room && plan.every > 0 && n.is_multiple_of(plan.every) {
            let kinds: Vec<Fault> = plan
                .kinds
                .iter()
                .copied()
                .filter(|k| *k != Fault::CopyError200)
                .collect();
            if !kinds.is_empty() {
                fault = Some(kinds[((n / plan.every - 1) % kinds.len() as u64) as usize]);
            }
        }
        if let Some(f) = fault {
            self.count(f, 1);
        }
        (self.total_requests, fault)
    }

    fn count(&mut self, fault: Fault, n: i64) {
        let kind = self.faults.entry(fault).or_default();
        *kind = kind.checked_add_signed(n).unwrap();
        self.planned_faults = self.planned_faults.checked_add_signed(n).unwrap();
    }
}

struct Shared {
    upstream: SocketAddr,
    state: Mutex<State>,
    stop: AtomicBool,
}

/// The proxy; it stops when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`: give it to reseal as `--endpoint-url`.
    pub endpoint: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy in front of `upstream` (`http://HOST:PORT`) that injects `plan`'s faults.
    pub fn start(upstream: &str, plan: Faults) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the upstream is http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State {
                plan,
                ..State::default()
            }),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    // A broken connection is the client's or the server's business: the
                    // test sees it in what reseal reports.
                    let _ = serve(&s, conn);
                });
            }
        });
        Proxy {
            endpoint: format!("http://{addr}"),
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Replaces the faults to come; the counts of what was done so far are kept.
    pub fn set_faults(&self, plan: Faults) {
        let mut state = self.state();
        state.plan = plan;
        state.requests = 0;
        state.copies = 0;
        state.planned_faults = 0;
    }

    /// Runs `hook` (on the proxy's thread, the request waiting) right before the first
    /// CopyObject onto `bucket`/`key` is forwarded.
    pub fn before_first_copy(&self, bucket: &str, key: &str, hook: impl FnOnce() + Send + 'static) {
        self.state()
            .copy_hooks
            .insert((bucket.to_owned(), key.to_owned()), Box::new(hook));
    }

    /// Runs `hook` right before each of the next `times` CopyObjects onto `bucket`/`key`
    /// is forwarded: a writer that keeps rewriting the object.
    pub fn before_copies(
        &self,
        bucket: &str,
        key: &str,
        times: u64,
        hook: impl Fn() + Send + Sync + 'static,
    ) {
        self.state()
            .repeated_hooks
            .insert((bucket.to_owned(), key.to_owned()), (times, Arc::new(hook)));
    }

    /// Runs `hook` once the server has answered a CopyObject onto `bucket`/`key` with
    /// success, before reseal gets the answer: a write that lands right after reseal's.
    pub fn after_copy(&self, bucket: &str, key: &str, hook: impl FnOnce() + Send + 'static) {
        self.state()
            .after_copy_hooks
            .insert((bucket.to_owned(), key.to_owned()), Box::new(hook));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// How many faults of each kind were injected.
    pub fn faults(&self) -> BTreeMap<Fault, u64> {
        self.state().faults.clone()
    }

    pub fn total_faults(&self) -> u64 {
        self.state().total_faults()
    }

    /// How many requests of each method reached the server (LostResponse ones included).
    pub fn forwarded(&self) -> BTreeMap<String, u64> {
        self.state().forwarded.clone()
    }

    /// Every request, in the order they arrived.
    pub fn seen(&self) -> Vec<Seen> {
        let mut seen = self.state().seen.clone();
        seen.sort_by_key(|s| s.n);
        seen
    }

    /// The object requests on `bucket`, by S3 operation as an estimate names them: HEAD and
    /// CopyObject (PUT with a copy source), what a run of small objects sends.
    pub fn per_operation(&self, bucket: &str) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for s in self.seen() {
            if s.bucket != bucket || s.key.is_empty() {
                continue;
            }
            let op = match (s.method.as_str(), s.copy) {
                ("HEAD", _) => "HeadObject",
                ("PUT", true) => "CopyObject",
                (other, _) => panic!("an unexpected {other} on {}", s.key),
            };
            *out.entry(op.to_owned()).or_default() += 1;
        }
        out
    }

    /// The CopyObject requests onto `bucket`/`key`, in the order they arrived.
    pub fn copies_of(&self, bucket: &str, key: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.copy && s.bucket == bucket && s.key == key)
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_HEAD: usize = 64 * 1024;

/// Reads up to the end of an HTTP head; returns the head (with its blank line) and what
/// was read past it. None: the stream ended first.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::other("HTTP head too long"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A parsed head: its first line and its header lines as they were.
struct Head {
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> io::Result<Head> {
        let text = std::str::from_utf8(raw).map_err(|_| io::Error::other("head not UTF-8"))?;
        let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Ok(Head { first, headers })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The head again, with `Connection: close` in place of any connection headers.
    fn closing(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.first);
        for (k, v) in &self.headers {
            let hop = ["connection", "keep-alive", "proxy-connection"];
            if !hop.iter().any(|h| k.eq_ignore_ascii_case(h)) {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if bytes[i] == b'%'
            && let Some(b) = hex
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/bucket/key?query` → (bucket, key), path-style.
fn bucket_and_key(target: &str) -> (String, String) {
    let path = target.split('?').next().unwrap_or_default();
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    (percent_decode(bucket), percent_decode(key))
}

fn error_answer(status: &str, code: &str, message: &str, n: u64, head_only: bool) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>reseal-proxy-{n}</RequestId></Error>"
    );
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nx-amz-request-id: reseal-proxy-{n}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if head_only { 0 } else { body.len() }
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Reads and discards what is left of a request body of `length` bytes, so that closing
/// the socket does not reset it under the client's feet before it reads the answer.
fn drain_body(client: &mut TcpStream, length: u64, already: usize) -> io::Result<()> {
    let left = length.saturating_sub(already as u64);
    io::copy(&mut client.take(left), &mut io::sink())?;
    Ok(())
}

fn serve(shared: &Shared, mut client: TcpStream) -> io::Result<()> {
    client.set_read_timeout(Some(TIMEOUT))?;
    client.set_write_timeout(Some(TIMEOUT))?;
    let Some((raw, rest)) = read_head(&mut client)? else {
        return Ok(()); // The accept loop's wake-up, or a client that gave up.
    };
    let head = Head::parse(&raw)?;
    let mut first = head.first.split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let (bucket, key) = bucket_and_key(&target);
    let copy = method == "PUT" && head.header("x-amz-copy-source").is_some();
    let length: Option<u64> = head.header("content-length").and_then(|v| v.parse().ok());
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));

    let (n, fault, hook, repeated) = {
        let mut state = shared.state.lock().unwrap();
        let (n, mut fault) = state.decide(copy);
        // A body of unknown length cannot be drained before answering: forward it.
        if let Some(f) = fault
            && chunked
            && f != Fault::LostResponse
        {
            state.count(f, -1);
            fault = None;
        }
        let forwarded_copy = copy && matches!(fault, None | Some(Fault::LostResponse));
        let object = (bucket.clone(), key.clone());
        let hook = if forwarded_copy {
            state.copy_hooks.remove(&object)
        } else {
            None
        };
        let repeated = match state.repeated_hooks.get_mut(&object) {
            Some((left, hook)) if forwarded_copy && *left > 0 => {
                *left -= 1;
                Some(hook.clone())
            }
            _ => None,
        };
        state.seen.push(Seen {
            n,
            method: method.clone(),
            bucket: bucket.clone(),
            key: key.clone(),
            copy,
            fault,
            status: None,
        });
        (n, fault, hook, repeated)
    };
    let record_status = |status: u16| {
        let mut state = shared.state.lock().unwrap();
        *state.forwarded.entry(method.clone()).or_default() += 1;
        if let Some(s) = state.seen.iter_mut().rev().find(|s| s.n == n) {
            s.status = Some(status);
        }
    };

    const INTERNAL: &str = "We encountered an internal error. Please try again.";
    let head_only = method == "HEAD";
    // The proxy's own answer: status line, S3 error code and message, whether it has no
    // body (an answer to HEAD; a CopyObject's 200 always has one).
    let answer = match fault {
        Some(Fault::SlowDown) => Some((
            "503 Slow Down",
            "SlowDown",
            "Please reduce your request rate.",
            head_only,
        )),
        Some(Fault::InternalError) => Some((
            "500 Internal Server Error",
            "InternalError",
            INTERNAL,
            head_only,
        )),
        Some(Fault::CopyError200) => Some(("200 OK", "InternalError", INTERNAL, false)),
        Some(Fault::Dropped) => {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Some(Fault::LostResponse) | None => None,
    };
    if let Some((status, code, message, head_only)) = answer {
        drain_body(&mut client, length.unwrap_or(0), rest.len())?;
        client.write_all(&error_answer(status, code, message, n, head_only))?;
        return Ok(());
    }

    if let Some(hook) = hook {
        hook();
    }
    if let Some(hook) = repeated {
        hook();
    }
    let mut upstream = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(10))?;
    upstream.set_read_timeout(Some(TIMEOUT))?;
    upstream.set_write_timeout(Some(TIMEOUT))?;
    upstream.write_all(&head.closing())?;
    upstream.write_all(&rest)?;
    // The rest of the request (its body) goes on as it comes, until the client closes or
    // the answer is done (then both sockets are shut down, which ends this copy).
    let body = {
        let mut from = client.try_clone()?;
        let mut to = upstream.try_clone()?;
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
        })
    };
    let answered = (|| -> io::Result<()> {
        loop {
            let Some((raw, rest)) = read_head(&mut upstream)? else {
                return Err(io::Error::other("the server closed without an answer"));
            };
            let head = Head::parse(&raw)?;
            let status: u16 = head
                .first
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if (100..200).contains(&status) {
                // 100 Continue: passed on as it is; the real answer follows.
                client.write_all(&raw)?;
                client.write_all(&rest)?;
                continue;
            }
            record_status(status);
            if fault == Some(Fault::LostResponse) {
                return Ok(());
            }
            if copy && (200..300).contains(&status) {
                // The whole answer first: a 200 CopyObject may still carry an error.
                let mut body = rest;
                upstream.read_to_end(&mut body)?;
                let hook = shared
                    .state
                    .lock()
                    .unwrap()
                    .after_copy_hooks
                    .remove(&(bucket.clone(), key.clone()));
                if let Some(hook) = hook {
                    hook();
                }
                client.write_all(&head.closing())?;
                client.write_all(&body)?;
                return Ok(());
            }
            client.write_all(&head.closing())?;
            client.write_all(&rest)?;
            io::copy(&mut upstream, &mut client)?;
            return Ok(());
        }
    })();
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = body.join();
    answered
}
