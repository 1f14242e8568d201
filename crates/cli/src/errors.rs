//! Errors as the user reads them: one line, each cause once (brix-build's
//! [`one_line`](brix_build::one_line), for the CLI's `anyhow` errors). CI tools show only the
//! last line of stderr, so the error itself must be on it.

/// `err` and its causes on one line, `outer: inner: …`, each cause once.
pub fn one_line(err: &anyhow::Error) -> String {
    brix_build::one_line(err.as_ref())
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn causes_go_on_one_line() {
        let err = anyhow::anyhow!("inner")
            .context("middle\nline")
            .context("outer");
        assert_eq!(one_line(&err), "outer: middle line: inner");
    }
}
