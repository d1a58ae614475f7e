//! Errors as people read them: an error and the errors under it on one line, without
//! Rust's debug formatting. Knows nothing of any module's errors.

/// `error: source: source of the source …`, each part once (a source whose text the line
/// already holds is not repeated).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("dispatch failure")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("io error")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn one_line_each_part_once() {
        let e = Outer(Middle(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )));
        assert_eq!(
            super::chain(&e),
            "dispatch failure: io error: Connection refused (os error 111)"
        );
    }
}
