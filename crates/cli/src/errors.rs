//! Errors as the user reads them: one line, each cause once. CI tools show only the last
//! line of stderr, so the error itself must be on it.

/// `err` and its causes on one line, `outer: inner: …`, leaving out a cause whose text an
/// outer message already contains (library errors often say their source themselves), and
/// with line breaks inside messages turned into spaces.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// An error that says its source in its own message, as many library errors do.
    #[derive(Debug)]
    struct Outer {
        source: std::io::Error,
    }

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "cannot reach the engine at x: {}\n(is it running?)",
                self.source
            )
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let inner = std::io::Error::other("socket not found");
        let err = anyhow::Error::new(Outer { source: inner }).context("listing builders");
        assert_eq!(
            one_line(&err),
            "listing builders: cannot reach the engine at x: socket not found (is it running?)"
        );
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let err = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(one_line(&err), "outer: middle: inner");
    }
}
