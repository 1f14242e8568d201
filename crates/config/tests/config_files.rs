//! File-level tests: BuildKit's documented example, the seed's config, malformed fixtures with
//! exact line:column messages, lints, TOML round-trips, and arbitrary-input robustness.

use std::path::{Path, PathBuf};

use brix_config::{
    BuildkitdConfig, ConfigError, ConfigFile, DiskSpace, Duration, GcPolicyRule, Severity,
    Spelling, WorkerKind, codes, effective_gc_policy, format_gc_policy, lint_bytes, lint_str,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

fn codes_of(src: &str) -> Vec<&'static str> {
    lint_str(src, "t.toml").iter().map(|d| d.code).collect()
}

#[test]
fn documented_example_parses_completely() {
    let path = fixtures().join("buildkitd-doc-example.toml");
    let file = ConfigFile::load(&path).expect("BuildKit's documented example is valid");
    let warning_codes: Vec<&str> = file.warnings.iter().map(|w| w.code).collect();
    // Only the documentation's own mistakes: http+insecure on docker.io, and [ghacache].
    assert_eq!(
        warning_codes,
        vec![codes::HTTP_AND_INSECURE, codes::UNKNOWN_SECTION]
    );
    assert_eq!((file.warnings[1].line, file.warnings[1].column), (212, 2));
    assert!(
        file.warnings[1]
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("[cache.gha"))
    );

    let c = &file.config;
    assert_eq!(c.root.as_deref(), Some("/var/lib/buildkit"));
    assert_eq!(c.proxy_network, Some(true));
    assert_eq!(
        c.log.as_ref().and_then(|l| l.level.as_deref()),
        Some("info")
    );
    assert_eq!(
        c.grpc
            .as_ref()
            .and_then(|g| g.tls.as_ref())
            .and_then(|t| t.ca.as_deref()),
        Some("/etc/buildkit/tlsca.crt")
    );
    assert_eq!(
        c.history
            .as_ref()
            .and_then(|h| h.max_age.as_ref())
            .map(Duration::nanos),
        Some(172_800_000_000_000)
    );
    assert_eq!(
        c.system
            .as_ref()
            .and_then(|s| s.platforms_cache_max_age.as_ref())
            .map(Duration::nanos),
        Some(3_600_000_000_000)
    );
    let oci = c.worker.oci.as_ref().expect("worker.oci");
    assert_eq!(
        oci.gc.reserved_space.as_ref().map(DiskSpace::percentage),
        Some(30)
    );
    assert_eq!(
        oci.gc.min_free_space.as_ref().map(DiskSpace::bytes),
        Some(20 << 30)
    );
    assert_eq!(oci.gc.gcpolicy.len(), 2);
    assert_eq!(oci.max_parallelism, Some(4));
    assert_eq!(oci.network.cni_pool_size, Some(16));
    assert_eq!(
        oci.platforms
            .as_ref()
            .map(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>()),
        Some(vec!["linux/amd64".to_string(), "linux/arm64".to_string()])
    );
    let ctd = c.worker.containerd.as_ref().expect("worker.containerd");
    assert_eq!(
        ctd.runtime
            .as_ref()
            .and_then(|r| r.options.as_ref())
            .and_then(|o| o.get("BinaryName"))
            .and_then(|v| v.as_str()),
        Some("runc")
    );
    let hub = &c.registry["docker.io"];
    assert_eq!(hub.keypair.as_ref().map(Vec::len), Some(1));
    assert_eq!(c.frontend["gateway.v0"].allowed_repositories, Some(vec![]));

    // Explicit rules: used as written, sizes with binary units.
    let rules = effective_gc_policy(&c.gc_config(WorkerKind::Oci), Some(100 << 30));
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].reserved_space, 512 << 20);
    assert_eq!(rules[0].max_used_space, 1 << 30);
    assert_eq!(rules[0].min_free_space, 10 << 30);
    assert_eq!(rules[0].keep_duration, 172_800_000_000_000);
    assert_eq!(rules[1].reserved_space, 1_024_000_000);
    assert!(rules[1].all);
    let ctd_rules = effective_gc_policy(&c.gc_config(WorkerKind::Containerd), Some(100 << 30));
    assert_eq!(ctd_rules[0].reserved_space, 512_000_000);
}

#[test]
fn documented_example_round_trips() {
    let src =
        std::fs::read_to_string(fixtures().join("buildkitd-doc-example.toml")).expect("fixture");
    let first = ConfigFile::parse(&src, "doc.toml").expect("valid").config;
    let text = first.to_toml().expect("serializes");
    let second = ConfigFile::parse(&text, "roundtrip.toml")
        .unwrap_or_else(|e| panic!("re-parse failed: {e}\n{text}"))
        .config;
    assert_eq!(first, second, "{text}");
    // Integers stay integers, strings stay strings (the spelling matters to BuildKit).
    assert!(text.contains("reservedSpace = 1024000000"), "{text}");
    assert!(text.contains("reservedSpace = \"30%\""), "{text}");
    assert_eq!(second.to_toml().expect("serializes"), text);
}

#[test]
fn seed_config_gives_buildx_inspect_output() {
    let file = ConfigFile::load(fixtures().join("seed.toml")).expect("seed parses");
    let codes: Vec<&str> = file.warnings.iter().map(|w| w.code).collect();
    assert_eq!(
        codes,
        vec![
            codes::DEPRECATED_GCKEEPSTORAGE,
            codes::SMALL_INTEGER_DISK_SIZE
        ]
    );
    let small = &file.warnings[1];
    assert_eq!((small.line, small.column), (3, 19));
    assert!(
        small.message.contains("20000 bytes (19.53KiB)"),
        "{}",
        small.message
    );
    assert!(small.message.contains("20000 MB"), "{}", small.message);
    assert!(small.fix.as_deref().is_some_and(|f| f.contains("\"20GB\"")));
    let rules = effective_gc_policy(
        &file.config.gc_config(WorkerKind::Oci),
        Some(270_553_174_016),
    );
    let text = format_gc_policy(&rules);
    assert_eq!(text.matches("Reserved Space: 19.53KiB").count(), 3);
    assert!(text.contains(" Max Used Space: 488.3MiB\n"));
}

#[test]
fn malformed_fixtures_report_line_and_column() {
    let dir = fixtures().join("bad");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("bad fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    entries.sort();
    for path in entries {
        let expect_path = path.with_extension("expect");
        let expected = std::fs::read_to_string(&expect_path)
            .unwrap_or_else(|_| panic!("missing {}", expect_path.display()))
            .trim_end()
            .to_string();
        let name = path.display().to_string();
        match ConfigFile::load(&path) {
            Ok(_) => panic!("{name} should not parse"),
            Err(ConfigError::Invalid { diagnostics }) => {
                let first = diagnostics
                    .iter()
                    .find(|d| d.severity == Severity::Error)
                    .unwrap_or_else(|| panic!("{name}: no error diagnostic"));
                let shown = first.to_string();
                let shown_first_line = shown.lines().next().unwrap_or("");
                assert_eq!(shown_first_line, format!("{name}:{expected}"));
            }
            Err(other) => panic!("{name}: unexpected error {other}"),
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} malformed fixtures");
}

#[test]
fn config_error_display_names_file_line_column_and_key() {
    let err = ConfigFile::parse("[worker.oci]\ngc = 1\n", "my.toml").expect_err("wrong type");
    assert_eq!(
        err.to_string(),
        "my.toml:2:6: error[BKC101]: worker.oci.gc: expected a boolean (true or false), found an integer"
    );
    let err = ConfigFile::parse("[worker.oci]\ngc = 1\nmaxUsedSpace = \"x\"\n", "my.toml")
        .expect_err("two");
    assert!(err.to_string().contains("(and 1 more error(s)"), "{err}");
}

#[test]
fn binary_and_non_utf8_input_are_typed_errors() {
    let diags = lint_bytes(b"root = \"/x\"\n\xff\xfe", "bin.toml");
    assert_eq!(diags.len(), 1);
    assert_eq!(
        (diags[0].code, diags[0].line, diags[0].column),
        (codes::NOT_TEXT, 2, 1)
    );
    let diags = lint_bytes(b"\x7fELF\x02\x01\x01\x00\x00", "elf.toml");
    assert_eq!(diags[0].code, codes::NOT_TEXT);
    assert!(matches!(
        ConfigFile::parse_bytes(b"\x00\x01", "x"),
        Err(ConfigError::Invalid { .. })
    ));
}

#[test]
fn deprecated_keys() {
    assert_eq!(
        codes_of("debug = true\n"),
        vec![codes::DEPRECATED_DEBUG_TRACE]
    );
    assert_eq!(
        codes_of("trace = false\n"),
        vec![codes::DEPRECATED_DEBUG_TRACE]
    );
    let d = lint_str("debug = true\n", "t.toml");
    assert!(
        d[0].fix
            .as_deref()
            .is_some_and(|f| f.contains("level = \"debug\""))
    );
    assert_eq!(
        codes_of("[[worker.oci.gcpolicy]]\nkeepBytes = \"512MB\"\n"),
        vec![codes::DEPRECATED_KEEPBYTES]
    );
    assert_eq!(
        codes_of("[[worker.oci.gcpolicy]]\nkeepBytes = \"1GB\"\nreservedSpace = \"2GB\"\n"),
        vec![codes::SHADOWED_DEPRECATED_KEY, codes::DEPRECATED_KEEPBYTES]
    );
    assert_eq!(
        codes_of("[worker.containerd]\ngckeepstorage = \"10GB\"\nmaxUsedSpace = \"50%\"\n"),
        vec![
            codes::SHADOWED_DEPRECATED_KEY,
            codes::DEPRECATED_GCKEEPSTORAGE
        ]
    );
}

#[test]
fn unknown_keys_and_sections_suggest_fixes() {
    let d = lint_str("[frontends.\"dockerfile.v0\"]\nenabled = true\n", "t.toml");
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].code, d[0].line, d[0].column),
        (codes::UNKNOWN_SECTION, 1, 2)
    );
    assert!(
        d[0].message.contains("did you mean `frontend`?"),
        "{}",
        d[0].message
    );
    assert_eq!(
        d[0].fix.as_deref(),
        Some("rename [frontends] to [frontend]")
    );

    let d = lint_str("[worker.oci]\ngckeepstorge = \"20GB\"\n", "t.toml");
    assert_eq!(
        (d[0].code, d[0].line, d[0].column),
        (codes::UNKNOWN_KEY, 2, 1)
    );
    assert!(
        d[0].message
            .contains("did you mean `worker.oci.gckeepstorage`?"),
        "{}",
        d[0].message
    );
    assert_eq!(
        d[0].fix.as_deref(),
        Some("rename `gckeepstorge` to `gckeepstorage`")
    );

    let d = lint_str("[registry.\"r.io\"]\nmirror = [\"m\"]\n", "t.toml");
    assert!(
        d[0].message
            .contains("did you mean `registry.\"r.io\".mirrors`?"),
        "{}",
        d[0].message
    );
    assert_eq!(
        codes_of("[frontend.\"mystery.v9\"]\nenabled = true\n"),
        vec![codes::UNKNOWN_SECTION]
    );
    assert_eq!(
        codes_of("[worker.runc]\nenabled = true\n"),
        vec![codes::UNKNOWN_SECTION]
    );
    assert_eq!(
        codes_of("totally_unrelated = 1\n"),
        vec![codes::UNKNOWN_KEY]
    );
}

#[test]
fn registry_http_insecure_lints() {
    let both = "[registry.\"myreg.example:5000\"]\nhttp = true\ninsecure = true\n";
    let d = lint_str(both, "t.toml");
    assert_eq!(
        (d[0].code, d[0].line, d[0].column),
        (codes::HTTP_AND_INSECURE, 3, 12)
    );
    let local = "[registry.\"localhost:5000\"]\ninsecure = true\n";
    let d = lint_str(local, "t.toml");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, codes::INSECURE_ON_LOCAL_HTTP);
    assert_eq!(d[0].fix.as_deref(), Some("http = true"));
    assert!(codes_of("[registry.\"localhost:5000\"]\nhttp = true\n").is_empty());
    assert!(codes_of("[registry.\"myreg.example\"]\ninsecure = true\n").is_empty());
}

#[test]
fn policies_while_gc_disabled() {
    let src =
        "[worker.oci]\ngc = false\n[[worker.oci.gcpolicy]]\nall = true\nreservedSpace = \"1GB\"\n";
    let d = lint_str(src, "t.toml");
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].code, d[0].line, d[0].column),
        (codes::GC_DISABLED_WITH_POLICY, 2, 6)
    );
    assert!(codes_of("[worker.oci]\ngc = false\n").is_empty());
}

#[test]
fn clean_configs_have_no_findings() {
    let src = "[worker.oci]\ngc = true\nreservedSpace = \"20GB\"\nmaxUsedSpace = \"80%\"\n\n\
               [registry.\"localhost:5000\"]\nhttp = true\n\n[log]\nlevel = \"debug\"\n";
    assert!(lint_str(src, "t.toml").is_empty());
    // Large integer sizes are plainly bytes: no warning.
    assert!(codes_of("[worker.oci]\nreservedSpace = 20000000000\n").is_empty());
}

/// A small deterministic generator, so failures reproduce without a new dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

fn check_diagnostics_sane(bytes: &[u8]) {
    for d in lint_bytes(bytes, "fuzz.toml") {
        assert!(d.line >= 1 && d.column >= 1, "{d}");
        assert!(!d.message.is_empty());
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    const TOKENS: &[&str] = &[
        "[",
        "]",
        "[[",
        "]]",
        "worker",
        ".",
        "oci",
        "containerd",
        "gcpolicy",
        "registry",
        "\"",
        "'",
        "=",
        " ",
        "\n",
        "gc",
        "true",
        "false",
        "20000",
        "\"20GB\"",
        "\"10%\"",
        "\"48h\"",
        "-",
        "{",
        "}",
        ",",
        "#",
        "keepBytes",
        "reservedSpace",
        "platforms",
        "[\"linux/arm64\"]",
        "\"\"\"",
        "1.5",
        "0x10",
        "1979-05-27",
        "é",
        "\\",
        "\t",
        "inf",
        "nan",
        "labels",
        "frontend",
        "history",
        "maxAge",
    ];
    for _ in 0..4000 {
        let mut bytes = Vec::new();
        for _ in 0..rng.below(40) {
            if rng.chance(6) {
                bytes.push(rng.next() as u8);
            } else {
                bytes.extend_from_slice(rng.pick(TOKENS).as_bytes());
            }
        }
        check_diagnostics_sane(&bytes);
    }
}

#[test]
fn mutated_valid_files_never_panic() {
    let doc = std::fs::read(fixtures().join("buildkitd-doc-example.toml")).expect("fixture");
    let seed = std::fs::read(fixtures().join("seed.toml")).expect("fixture");
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for i in 0..1500 {
        let mut bytes = if i % 2 == 0 {
            doc.clone()
        } else {
            seed.clone()
        };
        for _ in 0..=rng.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] = rng.next() as u8,
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, *rng.pick(b"[]\"'=.#\n{},-0123456789%")),
                _ => bytes.truncate(at),
            }
        }
        check_diagnostics_sane(&bytes);
        // Whatever parses must also round-trip.
        if let Ok(text) = std::str::from_utf8(&bytes)
            && let Ok(file) = ConfigFile::parse(text, "m.toml")
        {
            let out = file.config.to_toml().expect("serializes");
            let again = ConfigFile::parse(&out, "again.toml")
                .expect("re-parses")
                .config;
            assert_eq!(file.config, again, "{out}");
        }
    }
}

fn random_disk(rng: &mut XorShift) -> DiskSpace {
    match rng.below(4) {
        0 => DiskSpace::from_bytes((rng.next() % 1_000_000_000_000) as i64),
        1 => DiskSpace::parse(&format!("{}%", rng.below(101)), Spelling::String)
            .expect("valid percent"),
        2 => DiskSpace::parse(
            &format!(
                "{}{}",
                rng.below(5000),
                rng.pick(&["", "b", "KB", "MiB", "g", "GB", "T", " kib"])
            ),
            Spelling::String,
        )
        .expect("valid size"),
        _ => DiskSpace::parse("", Spelling::String).expect("empty"),
    }
}

fn random_duration(rng: &mut XorShift) -> Duration {
    if rng.chance(2) {
        Duration::from_secs(rng.below(10_000_000) as i64)
    } else {
        let text = format!(
            "{}{}",
            rng.below(1000),
            rng.pick(&["h", "m", "s", "ms", "h30m", "us"])
        );
        Duration::parse(&text, Spelling::String).expect("valid duration")
    }
}

fn random_string(rng: &mut XorShift) -> String {
    const PARTS: &[&str] = &[
        "a", "Z", "9", "-", "_", ".", "/", " ", "\"", "'", "\\", "é", "#", "=", "[", "\n", "\t",
    ];
    (0..rng.below(12)).map(|_| *rng.pick(PARTS)).collect()
}

fn maybe<T>(rng: &mut XorShift, f: impl FnOnce(&mut XorShift) -> T) -> Option<T> {
    if rng.chance(2) { Some(f(rng)) } else { None }
}

fn random_config(rng: &mut XorShift) -> BuildkitdConfig {
    let mut c = BuildkitdConfig {
        root: maybe(rng, random_string),
        proxy_network: maybe(rng, |r| r.chance(2)),
        insecure_entitlements: maybe(rng, |r| (0..r.below(3)).map(|_| random_string(r)).collect()),
        ..BuildkitdConfig::default()
    };
    if rng.chance(2) {
        let w = c.worker.oci.get_or_insert_with(Default::default);
        w.gc.gc = maybe(rng, |r| r.chance(2));
        w.gc.gckeepstorage = maybe(rng, random_disk);
        w.gc.reserved_space = maybe(rng, random_disk);
        w.gc.max_used_space = maybe(rng, random_disk);
        w.snapshotter = maybe(rng, random_string);
        w.max_parallelism = maybe(rng, |r| r.below(64) as i64);
        w.labels = maybe(rng, |r| {
            (0..r.below(3))
                .map(|_| (random_string(r), random_string(r)))
                .collect()
        });
        for _ in 0..rng.below(4) {
            let rule = GcPolicyRule {
                all: maybe(rng, |r| r.chance(2)),
                filters: maybe(rng, |r| (0..r.below(3)).map(|_| random_string(r)).collect()),
                keep_duration: maybe(rng, random_duration),
                keep_bytes: maybe(rng, random_disk),
                reserved_space: maybe(rng, random_disk),
                max_used_space: maybe(rng, random_disk),
                min_free_space: maybe(rng, random_disk),
            };
            w.gc.gcpolicy.push(rule);
        }
        w.platforms = maybe(rng, |r| {
            (0..r.below(3))
                .map(|_| {
                    brix_config::Platform::parse(r.pick::<&str>(&[
                        "linux/amd64",
                        "linux/arm/v6",
                        "arm64",
                    ]))
                    .expect("valid")
                })
                .collect()
        });
    }
    if rng.chance(2) {
        let w = c.worker.containerd.get_or_insert_with(Default::default);
        w.gc.min_free_space = maybe(rng, random_disk);
        w.namespace = maybe(rng, random_string);
    }
    for _ in 0..rng.below(3) {
        let host = random_string(rng);
        let reg = brix_config::RegistryConfig {
            http: maybe(rng, |r| r.chance(2)),
            insecure: maybe(rng, |r| r.chance(2)),
            mirrors: maybe(rng, |r| (0..r.below(3)).map(|_| random_string(r)).collect()),
            ..Default::default()
        };
        c.registry.insert(host, reg);
    }
    if rng.chance(2) {
        c.history = Some(brix_config::HistoryConfig {
            max_age: maybe(rng, random_duration),
            max_entries: maybe(rng, |r| r.below(1000) as i64),
        });
    }
    c
}

#[test]
fn random_models_round_trip_through_toml() {
    let mut rng = XorShift(0xdead_beef_cafe_f00d);
    for _ in 0..600 {
        let config = random_config(&mut rng);
        let text = config.to_toml().expect("serializes");
        let back = ConfigFile::parse(&text, "gen.toml")
            .unwrap_or_else(|e| panic!("generated TOML does not parse: {e}\n{text}"))
            .config;
        assert_eq!(config, back, "{text}");
    }
}

#[test]
fn free_form_tables_round_trip() {
    let src = "[cache.gha.sign]\ncmd = \"cosign sign-blob -\"\n[cache.gha.verify]\nrequired = true\n\
               [cache.gha.verify.policy]\ntimestampThreshold = 1\n\n\
               [worker.oci]\nsnapshotter = \"stargz\"\n[worker.oci.stargzSnapshotter]\nresolve_result_entry_ttl_sec = 30\n\
               [worker.oci.stargzSnapshotter.blob]\ncheck_always = true\nratio = 0.5\n\n\
               [worker.containerd.runtime]\nname = \"io.containerd.runc.v2\"\noptions = { BinaryName = \"crun\", SystemdCgroup = true }\n";
    let file = ConfigFile::parse(src, "free.toml").expect("valid");
    assert!(file.warnings.is_empty(), "{:?}", file.warnings);
    let cache = file.config.cache.as_ref().expect("cache");
    assert_eq!(
        cache["gha"]["verify"]["policy"]["timestampThreshold"].as_integer(),
        Some(1)
    );
    let text = file.config.to_toml().expect("serializes");
    let back = ConfigFile::parse(&text, "again.toml")
        .expect("re-parses")
        .config;
    assert_eq!(file.config, back, "{text}");
}

#[test]
fn unknown_entitlements() {
    let d = lint_str(
        "insecure-entitlements = [\"network.host\", \"networkhost\", \"device=gpu\"]\n",
        "t.toml",
    );
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].code, d[0].line, d[0].column),
        (codes::UNKNOWN_ENTITLEMENT, 1, 42)
    );
    assert_eq!(d[0].fix.as_deref(), Some("\"network.host\""));
}
