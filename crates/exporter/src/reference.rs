//! Image reference parsing without a regular expression.
//!
//! Distribution's grammar compiled into one large Unicode regex (as oci-client parses
//! references) costs ≈ 50 ms of CPU the first time in every process — a tenth of a cached
//! `brix build --push`. The grammar is small enough to check by hand:
//!
//! ```text
//! reference      := name [ ":" tag ] [ "@" digest ]
//! name           := [ domain "/" ] path-component { "/" path-component }
//! domain         := domain-component { "." domain-component } [ ":" port ]
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component := [a-z0-9]+ { separator [a-z0-9]+ }
//! separator      := "." | "_" | "__" | "-"*
//! tag            := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest         := algorithm ":" hex{32,}
//! algorithm      := [A-Za-z][A-Za-z0-9]* { [-_+.] [A-Za-z][A-Za-z0-9]* }
//! ```
//!
//! The result is normalised as distribution does: no domain (or a first component without
//! `.`, `:` and not `localhost`) means `docker.io`, `index.docker.io` is `docker.io`, and a
//! one-component Docker Hub name gets `library/`. A name without tag or digest gets `latest`.

/// The parts of a parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parts {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

const NAME_MAX: usize = 255;

/// Parses `reference`; the error says what is wrong with it.
pub(crate) fn parse(reference: &str) -> Result<Parts, &'static str> {
    if reference.is_empty() {
        return Err("repository name must have at least one component");
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    // A tag is what follows the last `:` after the last `/` (an earlier `:` is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if !valid_name(name) {
        return Err(
            if name.bytes().any(|b| b.is_ascii_uppercase())
                && valid_name(&name.to_ascii_lowercase())
            {
                "repository name must be lowercase"
            } else {
                "invalid reference format"
            },
        );
    }
    if let Some(t) = tag
        && !valid_tag(t)
    {
        return Err("invalid reference format");
    }
    if let Some(d) = digest {
        check_digest(d)?;
    }
    let (registry, repository) = split_domain(name);
    if repository.len() > NAME_MAX {
        return Err("repository name must not be more than 255 characters");
    }
    let tag = match (tag, digest) {
        (None, None) => Some("latest".to_owned()),
        (t, _) => t.map(str::to_owned),
    };
    Ok(Parts {
        registry,
        repository,
        tag,
        digest: digest.map(str::to_owned),
    })
}

fn valid_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    let all_paths = |ps: &[&str]| !ps.is_empty() && ps.iter().all(|p| valid_path_component(p));
    all_paths(&parts) || (parts.len() > 1 && valid_domain(parts[0]) && all_paths(&parts[1..]))
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    host.split('.').all(|c| {
        let b = c.as_bytes();
        !b.is_empty()
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    })
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|x| word(*x) || *x == b'.' || *x == b'-')
}

fn check_digest(digest: &str) -> Result<(), &'static str> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err("invalid reference format");
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|c| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    if !algorithm_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("invalid reference format");
    }
    let want = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if hex.len() != want {
        return Err("invalid checksum digest length");
    }
    Ok(())
}

fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut rest) = match name.split_once('/') {
        Some((left, right)) if left.contains(['.', ':']) || left == "localhost" => {
            (left.to_owned(), right.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".to_owned();
    }
    if domain == "docker.io" && !rest.contains('/') {
        rest = format!("library/{rest}");
    }
    (domain, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D64: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn inputs() -> Vec<String> {
        let mut v: Vec<String> = [
            "busybox",
            "busybox:1.36",
            "library/busybox",
            "docker.io/busybox",
            "index.docker.io/busybox:latest",
            "localhost/app",
            "localhost:5000/app:1",
            "127.0.0.1:5000/a/b/c:v1.2-rc_3",
            "registry.example.com/team/app",
            "registry.example.com:443/team/app:tag",
            "my-registry/app",
            "myhost:5000",
            "test.com:tag",
            "test.com:5000",
            "a__b/c.d/e--f---g",
            "a_b",
            "a___b",
            "a..b",
            "a.-b",
            "-a",
            "a-",
            "UPPER/app",
            "Upper",
            "host.Example.com/app",
            "app:",
            ":tag",
            "app:-tag",
            "app:.tag",
            "app:_tag",
            "app:t@g",
            "app@sha256:abc",
            "app@sha256:0123",
            "app@md5:0123456789abcdef0123456789abcdef",
            "app@sha256:zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "-host.com/app",
            "host-.com/app",
            "host..com/app",
            "host.com:/app",
            "host.com:50a0/app",
            "a//b",
            "/a",
            "a/",
            "",
            "@",
            "a:b:c",
            "localhost:5000/app:1@",
            "héllo",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push(format!("app@{D64}"));
        v.push(format!("app:1@{D64}"));
        v.push(format!("localhost:5000/app:1@{D64}"));
        v.push(format!("app@sha512:{}", "a".repeat(128)));
        v.push(format!("app@sha512:{}", "a".repeat(64)));
        v.push(format!("app:{}", "t".repeat(128)));
        v.push(format!("app:{}", "t".repeat(129)));
        v.push("a".repeat(256));
        v.push(format!("host.com/{}", "a".repeat(255)));
        v
    }

    /// What distribution's reference regex (as oci-client compiles it) made of each of
    /// [`inputs`], recorded once: `registry|repository|tag|digest` (`-` for none), or `None`
    /// where it refuses the input.
    fn distribution_answers() -> Vec<Option<String>> {
        let mut v: Vec<Option<String>> = [
            Some("docker.io|library/busybox|latest|-"),
            Some("docker.io|library/busybox|1.36|-"),
            Some("docker.io|library/busybox|latest|-"),
            Some("docker.io|library/busybox|latest|-"),
            Some("docker.io|library/busybox|latest|-"),
            Some("localhost|app|latest|-"),
            Some("localhost:5000|app|1|-"),
            Some("127.0.0.1:5000|a/b/c|v1.2-rc_3|-"),
            Some("registry.example.com|team/app|latest|-"),
            Some("registry.example.com:443|team/app|tag|-"),
            Some("docker.io|my-registry/app|latest|-"),
            Some("docker.io|library/myhost|5000|-"),
            Some("docker.io|library/test.com|tag|-"),
            Some("docker.io|library/test.com|5000|-"),
            Some("docker.io|a__b/c.d/e--f---g|latest|-"),
            Some("docker.io|library/a_b|latest|-"),
            None,
            None,
            None,
            None,
            None,
            Some("docker.io|UPPER/app|latest|-"),
            None,
            Some("host.Example.com|app|latest|-"),
            None,
            None,
            None,
            None,
            Some("docker.io|library/app|_tag|-"),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ]
        .iter()
        .map(|s: &Option<&str>| s.map(str::to_owned))
        .collect();
        v.push(Some(format!("docker.io|library/app|-|{D64}")));
        v.push(Some(format!("docker.io|library/app|1|{D64}")));
        v.push(Some(format!("localhost:5000|app|1|{D64}")));
        v.push(Some(format!(
            "docker.io|library/app|-|sha512:{}",
            "a".repeat(128)
        )));
        v.push(None);
        v.push(Some(format!("docker.io|library/app|{}|-", "t".repeat(128))));
        v.push(None);
        v.push(None);
        v.push(Some(format!("host.com|{}|latest|-", "a".repeat(255))));
        v
    }

    #[test]
    fn agrees_with_the_distribution_regex_on_every_sample() {
        let answers = distribution_answers();
        let inputs = inputs();
        assert_eq!(inputs.len(), answers.len());
        for (input, theirs) in inputs.iter().zip(answers) {
            let ours = parse(input).ok().map(|p| {
                format!(
                    "{}|{}|{}|{}",
                    p.registry,
                    p.repository,
                    p.tag.as_deref().unwrap_or("-"),
                    p.digest.as_deref().unwrap_or("-")
                )
            });
            assert_eq!(ours, theirs, "{input:?}");
        }
    }

    #[test]
    fn normalises_like_docker() {
        let p = parse("busybox").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (p.registry.as_str(), p.repository.as_str(), p.tag.as_deref()),
            ("docker.io", "library/busybox", Some("latest"))
        );
        let p = parse("localhost:5000/app:1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (p.registry.as_str(), p.repository.as_str(), p.tag.as_deref()),
            ("localhost:5000", "app", Some("1"))
        );
        assert_eq!(parse("Upper"), Err("repository name must be lowercase"));
    }

    #[test]
    fn tags_are_ascii_as_in_go() {
        // oci-client's regex takes `\w` as Unicode; Docker's grammar (Go) is ASCII only.
        assert_eq!(parse("app:tägg"), Err("invalid reference format"));
    }
}
