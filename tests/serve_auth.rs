//! Who and what `reseal serve` lets in: anonymous and wrongly signed requests, presigned
//! URLs (expiry, not yet valid, at most a week), header-signed requests dated too far
//! from the clock, and bodies that do not match their x-amz-content-sha256.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use common::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY, client_with_secret, rt};
use common::serve::{assert_refused, body, curl_sigv4, refused};

/// curl's options to write the answer's body, then its HTTP status on a line of its own.
const BODY_THEN_STATUS: [&str; 5] = ["-s", "-o", "/dev/stdout", "-w", "\n%{http_code}"];

#[test]
fn anonymous_and_wrongly_signed_requests_are_refused() {
    let server = S3Server::reseal_serve();
    let out = Command::new("curl")
        .args(BODY_THEN_STATUS)
        .arg(format!("{}/", server.endpoint))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("403"), "{text}");
    assert!(text.contains("AccessDenied"), "{text}");
    let c = client_with_secret(&server.endpoint, "not-the-secret");
    assert_refused!(
        rt().block_on(c.list_buckets().send()),
        "SignatureDoesNotMatch",
        403
    );
}

/// The hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SigV4 by hand, for the requests an SDK will not make (a presigned URL valid for years,
/// a request dated an hour away): the credential scope and signature of `canonical` (a
/// canonical request) signed at `at`.
fn sign_by_hand(at: SystemTime, canonical: &str) -> (String, String) {
    use hmac::{Hmac, KeyInit, Mac};
    let hmac = |key: &[u8], data: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let (stamp, day) = amz_date(at);
    let scope = format!("{day}/{REGION}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = format!("AWS4{SECRET_KEY}").into_bytes();
    for part in [day.as_str(), REGION, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hmac(&key, &to_sign)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (format!("{ACCESS_KEY}/{scope}"), signature)
}

/// `X-Amz-Date` and the credential scope's day, for `at`.
fn amz_date(at: SystemTime) -> (String, String) {
    let at = chrono::DateTime::<chrono::Utc>::from(at);
    (
        at.format("%Y%m%dT%H%M%SZ").to_string(),
        at.format("%Y%m%d").to_string(),
    )
}

/// A presigned GET of `path`, dated `at` and valid for `expires` seconds, signed by hand.
fn presign_by_hand(endpoint: &str, path: &str, at: SystemTime, expires: u64) -> String {
    let host = endpoint.trim_start_matches("http://");
    let (stamp, day) = amz_date(at);
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={ACCESS_KEY}%2F{day}%2F{REGION}%2Fs3%2F\
         aws4_request&X-Amz-Date={stamp}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
    );
    let canonical = format!("GET\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
    let (_, signature) = sign_by_hand(at, &canonical);
    format!("{endpoint}{path}?{query}&X-Amz-Signature={signature}")
}

/// GET `url` with curl: the status, and the S3 error code and message (empty if none).
fn curl_get(url: &str, headers: &[String]) -> (u16, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(BODY_THEN_STATUS);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    let element = |name: &str| {
        body.split_once(&format!("<{name}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map_or(String::new(), |(value, _)| value.to_owned())
    };
    (status.parse().unwrap(), element("Code"), element("Message"))
}

#[test]
fn presigned_urls_expire_and_are_valid_for_at_most_a_week() {
    use aws_sdk_s3::presigning::PresigningConfig;
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    let data = body(1000, 9);
    rt.block_on(async {
        c.create_bucket().bucket("pre").send().await.unwrap();
        c.put_object()
            .bucket("pre")
            .key("k")
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
    });
    let now = SystemTime::now();
    let presigned = |start: SystemTime, expires: u64| {
        let config = PresigningConfig::builder()
            .start_time(start)
            .expires_in(Duration::from_secs(expires))
            .build()
            .unwrap();
        let request = rt
            .block_on(c.get_object().bucket("pre").key("k").presigned(config))
            .unwrap();
        curl_get(request.uri(), &[])
    };
    let out = Command::new("curl")
        .args(["-s", "-f"])
        .arg(
            rt.block_on(
                c.get_object()
                    .bucket("pre")
                    .key("k")
                    .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap()),
            )
            .unwrap()
            .uri(),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "a fresh presigned GET is served");
    assert_eq!(out.stdout, data);
    assert_eq!(
        presigned(now + Duration::from_secs(300), 3600).0,
        200,
        "a clock five minutes behind the client's is within the skew allowed"
    );
    let (status, code, message) = presigned(now - Duration::from_secs(7200), 3600);
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (403, "AccessDenied", "Request has expired")
    );
    let (status, code, message) = presigned(now + Duration::from_secs(3600), 3600);
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (403, "AccessDenied", "Request is not yet valid")
    );

    // Past a week: the SDK refuses to sign such a URL, so it is signed by hand.
    let (status, ..) = curl_get(
        &presign_by_hand(&server.endpoint, "/pre/k", now, 604_800),
        &[],
    );
    assert_eq!(status, 200, "a week is allowed");
    for (at, expires) in [
        (now, 604_801),
        (now - Duration::from_secs(3000 * 86_400), 10 * 365 * 86_400),
    ] {
        let url = presign_by_hand(&server.endpoint, "/pre/k", at, expires);
        let (status, code, message) = curl_get(&url, &[]);
        assert_eq!(
            (status, code.as_str()),
            (400, "AuthorizationQueryParametersError"),
            "X-Amz-Expires={expires}: {message}"
        );
        assert!(message.contains("604800"), "{message}");
    }
}

#[test]
fn header_signed_requests_dated_too_far_from_the_clock_are_refused() {
    let server = S3Server::reseal_serve();
    let host = server.endpoint.trim_start_matches("http://");
    let empty = sha256_hex(b"");
    let list_buckets = |at: SystemTime| {
        let (stamp, _) = amz_date(at);
        let canonical = format!(
            "GET\n/\n\nhost:{host}\nx-amz-content-sha256:{empty}\nx-amz-date:{stamp}\n\n\
             host;x-amz-content-sha256;x-amz-date\n{empty}"
        );
        let (credential, signature) = sign_by_hand(at, &canonical);
        let headers = [
            format!(
                "Authorization: AWS4-HMAC-SHA256 Credential={credential}, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
            ),
            format!("x-amz-content-sha256: {empty}"),
            format!("x-amz-date: {stamp}"),
        ];
        let (status, code, _) = curl_get(&format!("{}/", server.endpoint), &headers);
        (status, code)
    };
    let now = SystemTime::now();
    assert_eq!(list_buckets(now), (200, String::new()));
    for at in [
        now + Duration::from_secs(3600),
        now - Duration::from_secs(3600),
    ] {
        assert_eq!(list_buckets(at), (403, "RequestTimeTooSkewed".to_owned()));
    }
}

#[test]
fn a_body_that_does_not_match_its_sha256_is_refused_and_not_stored() {
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    rt.block_on(c.create_bucket().bucket("sha").send()).unwrap();
    let wrong = format!("x-amz-content-sha256: {}", sha256_hex(b"other bytes"));
    // curl signs the request with the digest it is given: a valid signature, a wrong digest.
    let put = |url: &str, digest: &str, data: &str| {
        let out = curl_sigv4()
            .args(BODY_THEN_STATUS)
            .args(["-X", "PUT", "-H", digest, "--data-binary", data])
            .arg(format!("{}{url}", server.endpoint))
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = put("/sha/k", &wrong, "the bytes sent");
    assert!(said.ends_with("\n400"), "{said}");
    assert!(
        said.contains("<Code>XAmzContentSHA256Mismatch</Code>"),
        "{said}"
    );
    let (_, st) = refused!(rt.block_on(c.head_object().bucket("sha").key("k").send()));
    assert_eq!(st, 404, "nothing is stored");
    let right = format!("x-amz-content-sha256: {}", sha256_hex(b"the bytes sent"));
    assert!(put("/sha/k", &right, "the bytes sent").ends_with("\n200"));

    // A part, and an XML body (which s3s reads itself).
    let upload = rt
        .block_on(c.create_multipart_upload().bucket("sha").key("mp").send())
        .unwrap();
    let id = upload.upload_id().unwrap();
    let said = put(
        &format!("/sha/mp?partNumber=1&uploadId={id}"),
        &wrong,
        "a part",
    );
    assert!(
        said.contains("<Code>XAmzContentSHA256Mismatch</Code>"),
        "{said}"
    );
    let parts = rt
        .block_on(c.list_parts().bucket("sha").key("mp").upload_id(id).send())
        .unwrap();
    assert!(parts.parts().is_empty(), "no part is stored");
    let said = put(
        "/sha?tagging=",
        &wrong,
        "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
    );
    assert!(said.ends_with("\n400"), "{said}");
    assert!(
        said.contains("<Code>XAmzContentSHA256Mismatch</Code>"),
        "{said}"
    );
    assert!(!server.log().contains("ERROR"), "{}", server.log());
}
