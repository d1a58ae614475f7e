//! Throughput of the STREAM engine against one raw AES-256-GCM call over the same
//! 64 MiB, with rayon pools of 1 and 2 threads, for each backend compiled in.
//!
//! `cargo bench --bench engine` (default backend) and
//! `cargo bench --bench engine --features aws-lc` (both backends).

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Key};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rayon::{ThreadPool, ThreadPoolBuilder};
use reseal::crypto::{Backend, Cipher, Engine};

const LEN: usize = 64 * 1024 * 1024;
const KEY: [u8; 32] = [0x42; 32];
const NONCE: [u8; 12] = [7; 12];

fn plaintext() -> Vec<u8> {
    (0..LEN)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect()
}

fn pool(threads: usize) -> ThreadPool {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

/// One AES-256-GCM call over the whole buffer: the cost floor of the format.
enum Raw {
    RustCrypto(Box<Aes256Gcm>),
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
}

impl Raw {
    fn new(backend: Backend) -> Raw {
        match backend {
            Backend::RustCrypto => {
                let key: &Key<Aes256Gcm> = (&KEY).into();
                Raw::RustCrypto(Box::new(Aes256Gcm::new(key)))
            }
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
                Raw::AwsLc(LessSafeKey::new(
                    UnboundKey::new(&AES_256_GCM, &KEY).expect("key"),
                ))
            }
            _ => unreachable!("no such backend in this build"),
        }
    }

    fn seal_in_place(&self, buf: &mut [u8]) -> [u8; 16] {
        match self {
            Raw::RustCrypto(c) => c
                .encrypt_inout_detached((&NONCE).into(), b"", buf.into())
                .expect("seal")
                .into(),
            #[cfg(feature = "aws-lc")]
            Raw::AwsLc(k) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                let tag = k
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(NONCE),
                        Aad::empty(),
                        buf,
                    )
                    .expect("seal");
                tag.as_ref().try_into().expect("16-byte tag")
            }
        }
    }

    fn open_in_place(&self, buf: &mut [u8], tag: &[u8; 16]) {
        match self {
            Raw::RustCrypto(c) => {
                c.decrypt_inout_detached((&NONCE).into(), b"", buf.into(), tag.into())
                    .expect("open");
            }
            #[cfg(feature = "aws-lc")]
            Raw::AwsLc(k) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                k.open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(NONCE),
                    Aad::empty(),
                    tag,
                    buf,
                )
                .expect("open");
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let pt = plaintext();
    let pools = [(1, pool(1)), (2, pool(2))];
    let aad = b"bucket\0key";

    for &backend in Backend::ALL {
        let name = backend.name();
        let engine = Engine::with_cipher(Cipher::with_backend(&KEY, backend));
        let raw = Raw::new(backend);
        let sealed_len = engine.layout().sealed_len(LEN as u64).expect("length") as usize;
        let mut sealed = vec![0u8; sealed_len];
        let mut scratch = pt.clone();
        let mut opened = vec![0u8; LEN];

        let mut group = c.benchmark_group(format!("seal/{name}"));
        group
            .throughput(Throughput::Bytes(LEN as u64))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        group.bench_function("raw-1-call", |b| {
            b.iter(|| black_box(raw.seal_in_place(&mut scratch)))
        });
        for (threads, pool) in &pools {
            group.bench_function(format!("stream-{threads}t"), |b| {
                b.iter(|| {
                    pool.install(|| engine.seal_into(&pt, aad, &mut sealed))
                        .expect("seal");
                    black_box(&sealed);
                })
            });
        }
        group.finish();

        engine.seal_into(&pt, aad, &mut sealed).expect("seal");
        let mut raw_ct = pt.clone();
        let raw_tag = raw.seal_in_place(&mut raw_ct);
        let mut group = c.benchmark_group(format!("open/{name}"));
        group
            .throughput(Throughput::Bytes(LEN as u64))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        // Decrypting in place consumes the ciphertext: each iteration gets a fresh
        // copy, made outside the timed part.
        group.bench_function("raw-1-call", |b| {
            b.iter_batched_ref(
                || raw_ct.clone(),
                |buf| raw.open_in_place(buf, &raw_tag),
                BatchSize::PerIteration,
            )
        });
        for (threads, pool) in &pools {
            group.bench_function(format!("stream-{threads}t"), |b| {
                b.iter(|| {
                    pool.install(|| engine.open_into(&sealed, aad, &mut opened))
                        .expect("open");
                    black_box(&opened);
                })
            });
        }
        group.finish();

        engine.open_into(&sealed, aad, &mut opened).expect("open");
        assert_eq!(opened, pt, "{name}: engine round trip differs");
        raw.open_in_place(&mut raw_ct, &raw_tag);
        assert_eq!(raw_ct, pt, "{name}: raw round trip differs");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
