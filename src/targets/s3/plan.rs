//! The one table of what the S3 target does with an object and the requests that sends:
//! [`S3Target::choose`](super::S3Target) follows [`choose`], and an estimate counts
//! [`requests`], so that the two cannot disagree.

use super::{MAX_PARTS, MIN_PART_SIZE, Method, S3Options};
use crate::sse::SseMode;

/// How an object that needs work is re-encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Chosen {
    Update,
    Copy,
    Multipart,
}

impl Chosen {
    pub fn name(self) -> &'static str {
        match self {
            Chosen::Update => "UpdateObjectEncryption",
            Chosen::Copy => "CopyObject",
            Chosen::Multipart => "multipart copy",
        }
    }
}

/// What the job wants, as the table needs it.
#[derive(Debug, Clone, Copy)]
pub struct Wants {
    pub mode: SseMode,
    /// The job names a KMS key (UpdateObjectEncryption needs one).
    pub named_kms_key: bool,
}

/// Whether UpdateObjectEncryption can make an object of `from` what `want` asks.
pub fn update_applies(want: Wants, from: SseMode) -> bool {
    want.mode == SseMode::SseKms
        && want.named_kms_key
        && matches!(from, SseMode::SseS3 | SseMode::SseKms)
}

/// The method for an object of `from` and `size` (`update_unsupported`: the server said
/// it does not implement UpdateObjectEncryption). `--method update` on an object it cannot
/// change is refused by the caller, which says why.
pub fn choose(
    want: Wants,
    from: SseMode,
    size: u64,
    options: &S3Options,
    update_unsupported: bool,
) -> Chosen {
    let update = update_applies(want, from);
    match options.method {
        Method::Update => Chosen::Update,
        Method::Auto if update && options.amazon && !update_unsupported => Chosen::Update,
        _ if size > options.multipart_threshold => Chosen::Multipart,
        _ => Chosen::Copy,
    }
}

/// Whether, with `--trust-inventory`, an object the inventory lists as `from` is acted on
/// without a HEAD: not when it is copied in parts (its content headers are not in the
/// inventory), not when it is SSE-C (which key opens it only HEAD says), and not when it
/// is already in the wanted mode and that mode has a key to compare (the inventory has
/// no key column).
pub fn trusted_without_inspection(
    want: Wants,
    from: SseMode,
    size: u64,
    options: &S3Options,
) -> bool {
    let key_to_compare = want.mode != SseMode::SseS3;
    size <= options.multipart_threshold
        && from != SseMode::SseC
        && !(from == want.mode && key_to_compare)
}

/// The part size a multipart copy of `size` uses: the option, raised so that 10,000 parts
/// do, and never below S3's smallest.
pub fn part_size(size: u64, options: &S3Options) -> u64 {
    options
        .part_size
        .max(size.div_ceil(MAX_PARTS))
        .max(MIN_PART_SIZE)
}

/// The requests of one object, by S3 operation, as the target sends them when nothing
/// fails: the inspection (none when the inventory is trusted; two HEADs for an SSE-C
/// object, the first without its key), the write, and a confirming HEAD where the write's
/// answer does not name the new encryption. Tags read for a multipart copy are not
/// counted (whether an object has tags is not in an inventory).
pub fn requests(
    from: SseMode,
    want: Wants,
    chosen: Option<Chosen>,
    size: u64,
    trusted: bool,
    options: &S3Options,
) -> Vec<(&'static str, u64)> {
    let mut out = Vec::new();
    if !trusted {
        out.push(("HeadObject", if from == SseMode::SseC { 2 } else { 1 }));
    }
    let Some(chosen) = chosen else {
        return out;
    };
    match chosen {
        Chosen::Update => {
            out.push(("UpdateObjectEncryption", 1));
            out.push(("HeadObject", 1));
        }
        Chosen::Copy => out.push(("CopyObject", 1)),
        Chosen::Multipart => {
            out.push(("CreateMultipartUpload", 1));
            out.push((
                "UploadPartCopy",
                size.div_ceil(part_size(size, options)).max(1),
            ));
            out.push(("CompleteMultipartUpload", 1));
            if want.mode == SseMode::SseC {
                out.push(("HeadObject", 1));
            }
        }
    }
    if options.preserve_acl {
        out.push(("GetObjectAcl", 1));
        out.push(("PutObjectAcl", 1));
    }
    out
}

/// KMS requests S3 makes for one written object, without a Bucket Key: a data key for the
/// new object, and one to open an SSE-KMS or DSSE-KMS source (UpdateObjectEncryption
/// re-wraps the key: one request). With a Bucket Key, S3 asks KMS about once per bucket
/// key's lifetime instead.
pub fn kms_requests(from: SseMode, want: Wants, chosen: Chosen) -> u64 {
    let to_kms = matches!(want.mode, SseMode::SseKms | SseMode::DsseKms);
    let from_kms = matches!(from, SseMode::SseKms | SseMode::DsseKms);
    match chosen {
        Chosen::Update => 1,
        Chosen::Copy | Chosen::Multipart => u64::from(to_kms) + u64::from(from_kms),
    }
}

/// Whether the operation counts against S3's write rate (3,500 per second per prefix) or
/// its read rate (5,500).
pub fn is_write(operation: &str) -> bool {
    !matches!(
        operation,
        "HeadObject" | "GetObjectAcl" | "GetObjectTagging"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_follow_the_method() {
        let want = Wants {
            mode: SseMode::SseKms,
            named_kms_key: true,
        };
        let o = S3Options {
            amazon: false,
            multipart_threshold: 8 << 20,
            part_size: 5 << 20,
            ..S3Options::default()
        };
        let plain = SseMode::NotSse;
        assert_eq!(choose(want, plain, 1, &o, false), Chosen::Copy);
        assert_eq!(
            requests(plain, want, Some(Chosen::Copy), 1, false, &o),
            [("HeadObject", 1), ("CopyObject", 1)]
        );
        assert_eq!(
            requests(plain, want, Some(Chosen::Copy), 1, true, &o),
            [("CopyObject", 1)]
        );
        let big = 12 << 20;
        assert_eq!(choose(want, plain, big, &o, false), Chosen::Multipart);
        assert_eq!(
            requests(plain, want, Some(Chosen::Multipart), big, false, &o),
            [
                ("HeadObject", 1),
                ("CreateMultipartUpload", 1),
                ("UploadPartCopy", 3),
                ("CompleteMultipartUpload", 1)
            ]
        );
        let aws = S3Options::default();
        assert_eq!(choose(want, SseMode::SseS3, 1, &aws, false), Chosen::Update);
        assert_eq!(choose(want, SseMode::SseS3, 1, &aws, true), Chosen::Copy);
        assert_eq!(kms_requests(SseMode::SseKms, want, Chosen::Copy), 2);
        assert_eq!(kms_requests(plain, want, Chosen::Copy), 1);
    }
}
