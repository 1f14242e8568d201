//! The tty display's colours, as BuildKit's progress UI picks them: finished steps blue,
//! failed red, canceled yellow, log lines faint; `NO_COLOR` turns colours off and
//! `BUILDKIT_COLORS` (`run=green:error=light-red:cancel=255,165,0`) changes them.

use std::sync::OnceLock;

/// The escape sequences of the four roles (`None`: uncoloured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermColors {
    /// Finished steps.
    pub run: Option<String>,
    /// Canceled steps.
    pub cancel: Option<String>,
    /// Warnings.
    pub warning: Option<String>,
    /// Failed steps.
    pub error: Option<String>,
}

/// SGR "faint", for log lines (BuildKit applies it whatever the colours).
pub const FAINT: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

fn named(name: &str) -> Option<String> {
    let code = match name {
        "default" => 39,
        "black" => 30,
        "red" => 31,
        "green" => 32,
        "yellow" => 33,
        "blue" => 34,
        "magenta" => 35,
        "cyan" => 36,
        "white" => 37,
        "light-black" => 90,
        "light-red" => 91,
        "light-green" => 92,
        "light-yellow" => 93,
        "light-blue" => 94,
        "light-magenta" => 95,
        "light-cyan" => 96,
        "light-white" => 97,
        _ => return None,
    };
    Some(format!("\x1b[{code}m"))
}

/// `r,g,b` (each 0–255) as a 24-bit colour.
fn rgb(value: &str) -> Option<String> {
    let parts: Vec<u8> = value
        .split(',')
        .map(|p| p.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .ok()?;
    match parts.as_slice() {
        [r, g, b] => Some(format!("\x1b[38;2;{r};{g};{b}m")),
        _ => None,
    }
}

impl TermColors {
    /// The colours for this environment (`NO_COLOR`, `BUILDKIT_COLORS`).
    pub fn from_env() -> Self {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            return Self::default();
        }
        let mut colors = Self {
            run: named("blue"),
            cancel: named("yellow"),
            warning: named("yellow"),
            error: named("red"),
        };
        if let Ok(spec) = std::env::var("BUILDKIT_COLORS") {
            colors.apply(&spec);
        }
        colors
    }

    /// Applies a `BUILDKIT_COLORS` value; entries that do not parse are skipped with a
    /// warning, as BuildKit does.
    fn apply(&mut self, spec: &str) {
        for field in spec.split(':').filter(|f| !f.is_empty()) {
            let Some((key, value)) = field.split_once('=').filter(|(_, v)| !v.contains('=')) else {
                tracing::warn!("Could not parse BUILDKIT_COLORS component: {field}");
                continue;
            };
            let value = value.to_ascii_lowercase();
            let Some(color) = named(&value).or_else(|| rgb(&value)) else {
                tracing::warn!("Unknown color value found in BUILDKIT_COLORS: {key}={value}");
                continue;
            };
            match key.to_ascii_lowercase().as_str() {
                "run" => self.run = Some(color),
                "cancel" => self.cancel = Some(color),
                "warning" => self.warning = Some(color),
                "error" => self.error = Some(color),
                other => tracing::warn!("Unknown key found in BUILDKIT_COLORS: {other}"),
            }
        }
    }

    /// The colours of this process, read once.
    pub fn get() -> &'static Self {
        static COLORS: OnceLock<TermColors> = OnceLock::new();
        COLORS.get_or_init(Self::from_env)
    }
}

/// `line` in `color` (unchanged without one).
pub fn paint(line: String, color: Option<&str>) -> String {
    match color {
        Some(c) => format!("{c}{line}{RESET}"),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_colors_override_the_defaults() {
        let mut c = TermColors {
            run: named("blue"),
            ..Default::default()
        };
        c.apply("run=green:error=255,165,0:cancel=nope:bogus");
        assert_eq!(c.run.as_deref(), Some("\x1b[32m"));
        assert_eq!(c.error.as_deref(), Some("\x1b[38;2;255;165;0m"));
        assert_eq!(c.cancel, None);
        assert_eq!(paint("x".into(), c.run.as_deref()), "\x1b[32mx\x1b[0m");
        assert_eq!(paint("x".into(), None), "x");
    }
}
