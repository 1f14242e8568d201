//! `/etc/hosts` for the set-up steps that reach their servers by a host name mapped to
//! 127.0.0.1 (`tls-registry`, `kubernetes`).

use anyhow::{Context, Result};
use std::io::Write;

/// The system's hosts file.
pub const ETC_HOSTS: &str = "/etc/hosts";

/// The address the first line naming `name` gives it (the one resolvers use).
pub fn address_of<'t>(hosts: &'t str, name: &str) -> Option<&'t str> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let address = fields.next()?;
        fields
            .any(|field| field.eq_ignore_ascii_case(name))
            .then_some(address)
    })
}

/// Appends `line` (ending in a newline) to the hosts file whose text is `text`, on a line of
/// its own. Appended in place: /etc/hosts may be a bind mount, which a rename would not
/// replace.
pub fn append_line(text: &str, line: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(ETC_HOSTS)
        .with_context(|| format!("opening {ETC_HOSTS} to append to it"))?;
    let newline = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    file.write_all(format!("{newline}{line}").as_bytes())
        .with_context(|| format!("appending to {ETC_HOSTS}"))
}
