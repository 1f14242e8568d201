//! `-o/--output`, `--push`, `--load` and `-t` turned into the outputs of a build, as buildx
//! reads them: `type=local,dest=DIR`, `type=tar,dest=FILE|-`, `type=oci,dest=FILE|-`,
//! `type=docker[,dest=FILE]`, `type=image,name=…,push=true`, `type=registry`,
//! `type=cacheonly`; a bare path means `local` and `-` means a tar on stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;

/// Where a tarball goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// Standard output.
    Stdout,
    /// A file.
    File(PathBuf),
}

/// One output of the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The result's files in a directory.
    Local {
        /// The directory.
        dest: PathBuf,
    },
    /// The result's files as a tarball.
    Tar {
        /// Where it goes.
        dest: Dest,
    },
    /// An OCI image layout tarball.
    Oci {
        /// Where it goes.
        dest: Dest,
        /// Exporter attributes (`name`, ...).
        attrs: BTreeMap<String, String>,
    },
    /// A `docker load` tarball; loaded into the engine when `dest` is `None`.
    Docker {
        /// Where it goes, or `None` to load it.
        dest: Option<Dest>,
        /// Exporter attributes (`name`, ...).
        attrs: BTreeMap<String, String>,
    },
    /// An image in the builder's store, pushed when `push` is set.
    Image {
        /// Exporter attributes; `name` holds the comma-separated names.
        attrs: BTreeMap<String, String>,
        /// Push to the registry.
        push: bool,
    },
    /// Nothing but the build cache.
    CacheOnly,
}

impl Output {
    /// True for outputs that are images (where buildx attaches provenance by default).
    pub fn is_image(&self) -> bool {
        matches!(
            self,
            Output::Oci { .. } | Output::Docker { .. } | Output::Image { .. }
        )
    }

    /// The image names of this output, from its `name` attribute.
    pub fn names(&self) -> Vec<String> {
        match self {
            Output::Oci { attrs, .. }
            | Output::Docker { attrs, .. }
            | Output::Image { attrs, .. } => attrs
                .get("name")
                .map(|n| {
                    n.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// Splits one CSV record, honouring double quotes.
fn csv_fields(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|f| !f.is_empty()).collect()
}

fn dest_of(value: Option<String>) -> Option<Dest> {
    value.map(|d| {
        if d == "-" {
            Dest::Stdout
        } else {
            Dest::File(PathBuf::from(d))
        }
    })
}

fn is_true(v: Option<&String>) -> bool {
    v.is_some_and(|v| matches!(v.as_str(), "true" | "1" | ""))
}

/// Parses one `-o` value.
pub fn parse_output(spec: &str) -> anyhow::Result<Output> {
    if spec == "-" {
        return Ok(Output::Tar { dest: Dest::Stdout });
    }
    if !spec.contains('=') {
        return Ok(Output::Local {
            dest: PathBuf::from(spec),
        });
    }
    let mut attrs = BTreeMap::new();
    for field in csv_fields(spec) {
        let (k, v) = field.split_once('=').unwrap_or((field.as_str(), ""));
        attrs.insert(k.trim().to_ascii_lowercase(), v.to_owned());
    }
    let kind = attrs.remove("type").unwrap_or_else(|| "local".to_owned());
    let dest = attrs.remove("dest");
    Ok(match kind.as_str() {
        "local" => match dest {
            Some(d) if d != "-" => Output::Local {
                dest: PathBuf::from(d),
            },
            Some(_) => bail!("invalid output {spec:?}: a local output needs a directory, not -"),
            None => bail!("invalid output {spec:?}: dest is required for the local output (type=local,dest=DIR)"),
        },
        "tar" => Output::Tar {
            dest: dest_of(dest).ok_or_else(|| {
                anyhow::anyhow!("invalid output {spec:?}: dest is required for the tar output (type=tar,dest=FILE or dest=-)")
            })?,
        },
        "oci" => Output::Oci {
            dest: dest_of(dest).ok_or_else(|| {
                anyhow::anyhow!("invalid output {spec:?}: dest is required for the oci output (type=oci,dest=FILE or dest=-)")
            })?,
            attrs,
        },
        "docker" => Output::Docker {
            dest: dest_of(dest),
            attrs,
        },
        "image" => {
            let push = is_true(attrs.get("push"));
            attrs.remove("push");
            Output::Image { attrs, push }
        }
        "registry" => {
            attrs.remove("push");
            Output::Image { attrs, push: true }
        }
        "cacheonly" => Output::CacheOnly,
        other => bail!(
            "invalid output {spec:?}: unknown type {other:?}; valid types: local, tar, oci, docker, image, registry, cacheonly"
        ),
    })
}

/// All outputs of a build: the `-o` values plus `--push` and `--load`, with `-t` names filled
/// in where an image output has no `name`.
pub fn resolve_outputs(
    specs: &[String],
    push: bool,
    load: bool,
    tags: &[String],
) -> anyhow::Result<Vec<Output>> {
    let mut outputs = specs
        .iter()
        .map(|s| parse_output(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if push {
        match outputs
            .iter_mut()
            .find(|o| matches!(o, Output::Image { .. }))
        {
            Some(Output::Image { push: p, .. }) => *p = true,
            _ => outputs.push(Output::Image {
                attrs: BTreeMap::new(),
                push: true,
            }),
        }
    }
    if load && !outputs.iter().any(|o| matches!(o, Output::Docker { .. })) {
        outputs.push(Output::Docker {
            dest: None,
            attrs: BTreeMap::new(),
        });
    }
    let joined = tags.join(",");
    for o in &mut outputs {
        match o {
            Output::Image { attrs, .. }
            | Output::Docker { attrs, .. }
            | Output::Oci { attrs, .. }
                if !attrs.contains_key("name") && !joined.is_empty() =>
            {
                attrs.insert("name".into(), joined.clone());
            }
            _ => {}
        }
    }
    for o in &outputs {
        if let Output::Image { push: true, .. } = o
            && o.names().is_empty()
        {
            bail!(
                "tag is needed when pushing to registry: add -t NAME:TAG (or -o type=registry,name=NAME:TAG)"
            );
        }
    }
    if outputs
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Tar { dest: Dest::Stdout }
                    | Output::Oci {
                        dest: Dest::Stdout,
                        ..
                    }
                    | Output::Docker {
                        dest: Some(Dest::Stdout),
                        ..
                    }
            )
        })
        .count()
        > 1
    {
        bail!("only one output can be written to stdout (-)");
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_output_forms() {
        assert_eq!(
            parse_output("out").unwrap_or(Output::CacheOnly),
            Output::Local { dest: "out".into() }
        );
        assert_eq!(
            parse_output("-").unwrap_or(Output::CacheOnly),
            Output::Tar { dest: Dest::Stdout }
        );
        assert_eq!(
            parse_output("type=tar,dest=a.tar").unwrap_or(Output::CacheOnly),
            Output::Tar {
                dest: Dest::File("a.tar".into())
            }
        );
        assert!(matches!(
            parse_output("type=registry,name=r/x:1"),
            Ok(Output::Image { push: true, .. })
        ));
        assert!(matches!(
            parse_output("type=image,name=r/x:1,push=true"),
            Ok(Output::Image { push: true, .. })
        ));
        assert!(parse_output("type=local").is_err());
        assert!(parse_output("type=bogus,dest=x").is_err());
    }

    #[test]
    fn push_and_load_add_outputs_named_by_tags() {
        let outs = resolve_outputs(&[], true, false, &["r/a:1".into(), "r/a:2".into()])
            .unwrap_or_default();
        assert_eq!(outs.len(), 1);
        assert_eq!(outs[0].names(), vec!["r/a:1", "r/a:2"]);
        assert!(resolve_outputs(&[], true, false, &[]).is_err());
        let outs = resolve_outputs(&[], false, true, &["x:1".into()]).unwrap_or_default();
        assert!(matches!(&outs[0], Output::Docker { dest: None, .. }));
    }
}
