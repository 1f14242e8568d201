//! What the scenarios build and push: Dockerfiles, a large deterministic build context, and
//! two-platform OCI layouts with fresh random layers.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A small, fast pseudo-random generator (SplitMix64). The bytes only have to be
/// incompressible and reproducible from a seed, not secure.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose output is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }
}

/// Size of a generated build context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextSize {
    /// Number of files (not counting the Dockerfile and the file the one-file case changes).
    pub files: usize,
    /// Total bytes over those files (exact).
    pub bytes: u64,
}

/// The file the "one file changed" case rewrites before each run; it is not part of the
/// generated set, so the generated files (and their stamp) stay valid across bench runs.
pub const CHANGING_FILE: &str = "src/changing.txt";

/// Writes a deterministic build context into `dir` — `Dockerfile` (`COPY . /src`) and
/// `size.files` random files spread over 100 folders, `size.bytes` in total — unless a
/// stamp file says the same context is already there. Returns whether it wrote anything.
pub fn ensure_context(dir: &Path, size: ContextSize, base_image: &str) -> Result<bool> {
    let stamp_path = dir.join(".bench-stamp");
    let stamp = format!(
        "splitmix64 seed=8 files={} bytes={}\n",
        size.files, size.bytes
    );
    let dockerfile = format!("FROM {base_image}\nCOPY . /src\n");
    if std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
        && std::fs::read_to_string(dir.join("Dockerfile")).is_ok_and(|s| s == dockerfile)
    {
        return Ok(false);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let mut rng = SplitMix64::new(8);
    let sizes = file_sizes(size);
    let mut buf = Vec::new();
    for (index, len) in sizes.iter().enumerate() {
        let folder = dir.join("src").join(format!("d{:03}", index % 100));
        if index < 100 {
            std::fs::create_dir_all(&folder)
                .with_context(|| format!("creating {}", folder.display()))?;
        }
        buf.resize(*len as usize, 0);
        rng.fill(&mut buf);
        let path = folder.join(format!("f{index:05}.bin"));
        std::fs::write(&path, &buf).with_context(|| format!("writing {}", path.display()))?;
    }
    std::fs::write(dir.join("Dockerfile"), dockerfile)?;
    change_one_file(dir, 0)?;
    // Written last: an interrupted generation leaves no stamp and is redone next time.
    std::fs::write(&stamp_path, stamp)?;
    Ok(true)
}

/// File sizes between half and one and a half times the mean, summing to exactly
/// `size.bytes`: sizes come in pairs that add up to twice the mean.
pub fn file_sizes(size: ContextSize) -> Vec<u64> {
    if size.files == 0 {
        return Vec::new();
    }
    let mean = size.bytes / size.files as u64;
    let mut rng = SplitMix64::new(16);
    let mut sizes = Vec::with_capacity(size.files);
    while sizes.len() + 1 < size.files {
        let small = mean / 2 + rng.next_u64() % mean.max(1);
        sizes.extend([small, 2 * mean - small]);
    }
    if sizes.len() < size.files {
        sizes.push(mean);
    }
    let last = sizes.len() - 1;
    sizes[last] += size.bytes - mean * size.files as u64;
    sizes
}

/// Rewrites [`CHANGING_FILE`] with content that depends on `run`, so each run of the
/// one-file case sends exactly one changed file.
pub fn change_one_file(dir: &Path, run: u64) -> Result<()> {
    let path = dir.join(CHANGING_FILE);
    std::fs::write(&path, format!("bench run {run}\n"))
        .with_context(|| format!("writing {}", path.display()))
}

/// A Dockerfile with two stages and RUN steps, so each platform (arm64 under QEMU) does
/// real work in the daemon while the client only waits. Apart from `uname` it uses shell
/// builtins only, so it also runs where the emulators are registered without binfmt's P flag
/// (as brix did before it registered Debian's `-binfmt-P` links): there a busybox applet
/// exec'd by its link name in an arm64 stage loses its argv[0] and runs as `sh`.
pub fn multistage_dockerfile(base_image: &str) -> String {
    format!(
        "FROM {base_image} AS build\n\
         RUN i=0; s=0; while [ $i -lt 20000 ]; do s=$(( (s + i * i) % 1000003 )); i=$((i+1)); done; \
         echo \"sum $s\" > /sum && uname -m > /arch\n\
         RUN read a < /arch; read s < /sum; echo \"$a $s\" > /result\n\
         FROM {base_image}\n\
         COPY --from=build /result /out/result\n\
         RUN read r < /out/result; echo \"$r\"\n"
    )
}

/// How many services the bake-print file's matrix builds, each in two variants; with the
/// file's four plain targets that makes [`BAKE_PRINT_TARGETS`].
pub const BAKE_PRINT_SERVICES: usize = 23;

/// Targets `bake --print` of [`bake_print_file`] prints (hidden `_common` not counted).
pub const BAKE_PRINT_TARGETS: usize = BAKE_PRINT_SERVICES * 2 + 4;

/// A bake file the way a monorepo writes one, for `bake --print`: variables (one a list),
/// two user functions, a `_common` target the others inherit, a `matrix` target of
/// [`BAKE_PRINT_SERVICES`] services x `debug`/`release` whose attributes call functions
/// (`upper`, `join`, `slice`, `concat`, `replace`) and conditionals, a `target:` context, and
/// four plain targets, two inheriting from a third; the `default` group names them all.
pub fn bake_print_file() -> String {
    let services: Vec<String> = (1..=BAKE_PRINT_SERVICES)
        .map(|n| format!("\"svc{n:02}\""))
        .collect();
    format!(
        r#"variable "REGISTRY" {{
  default = "registry.example.com/bench"
}}
variable "TAG" {{
  default = "1.4.2"
}}
variable "SERVICES" {{
  default = [{services}]
}}
function "image" {{
  params = [name, variant]
  result = "${{REGISTRY}}/${{name}}:${{TAG}}-${{variant}}"
}}
function "service_dir" {{
  params = [name]
  result = "services/${{replace(name, "svc", "")}}"
}}
group "default" {{
  targets = ["base", "app", "lint", "docs", "test"]
}}
target "_common" {{
  args = {{
    GO_VERSION = "1.25"
    BUILD_TAG = TAG
  }}
  labels = {{
    "org.opencontainers.image.source" = "https://example.com/monorepo"
    "org.opencontainers.image.version" = TAG
  }}
  platforms = ["linux/amd64", "linux/arm64"]
}}
target "base" {{
  inherits = ["_common"]
  context = "base"
  tags = [image("base", "release")]
}}
target "app" {{
  name = "${{svc}}-${{variant}}"
  inherits = ["_common"]
  matrix = {{
    svc = SERVICES
    variant = ["debug", "release"]
  }}
  context = service_dir(svc)
  target = variant
  contexts = {{
    base = "target:base"
  }}
  tags = concat([image(svc, variant)], variant == "release" ? ["${{REGISTRY}}/${{svc}}:latest"] : [])
  args = {{
    SERVICE = upper(svc)
    OPTIMIZE = variant == "release" ? "2" : "0"
    FEATURES = join(",", [for s in slice(SERVICES, 0, 3) : s if s != svc])
  }}
  cache-from = ["type=registry,ref=${{REGISTRY}}/${{svc}}:cache"]
  cache-to = ["type=inline"]
}}
target "lint" {{
  inherits = ["_common"]
  context = "."
  dockerfile = "lint.Dockerfile"
  platforms = ["linux/amd64"]
  output = ["type=cacheonly"]
}}
target "docs" {{
  inherits = ["lint"]
  dockerfile = "docs.Dockerfile"
  args = {{
    TITLE = title("bench docs ${{TAG}}")
  }}
}}
target "test" {{
  inherits = ["lint"]
  target = "test"
  args = {{
    SERVICE_COUNT = length(SERVICES)
  }}
}}
"#,
        services = services.join(", ")
    )
}

/// A bake file of `targets` targets that all build the context of the folder bake runs in
/// (its own `Dockerfile`, `COPY . /src`) for `platforms`, `output = type=cacheonly`. They
/// differ only in the build arg `VARIANT`, so each is a solve of its own; the Dockerfile
/// does not read the arg, so the daemon may share their identical steps, as it would for
/// any real file whose targets share a context.
pub fn bake_context_file(targets: usize, platforms: &str) -> String {
    let names: Vec<String> = (1..=targets).map(|n| format!("\"part-{n}\"")).collect();
    let platforms: Vec<String> = platforms.split(',').map(|p| format!("\"{p}\"")).collect();
    let mut out = format!(
        "group \"default\" {{\n  targets = [{}]\n}}\n\
         target \"_part\" {{\n  context = \".\"\n  platforms = [{}]\n  \
         output = [\"type=cacheonly\"]\n}}\n",
        names.join(", "),
        platforms.join(", ")
    );
    for n in 1..=targets {
        out.push_str(&format!(
            "target \"part-{n}\" {{\n  inherits = [\"_part\"]\n  args = {{\n    \
             VARIANT = \"{n}\"\n  }}\n}}\n"
        ));
    }
    out
}

/// What [`write_push_layout`] made, for checking that the registry received it.
#[derive(Debug, Clone)]
pub struct PushLayout {
    /// The layout directory.
    pub dir: PathBuf,
    /// `sha256:<hex>` of every layer blob.
    pub layer_digests: Vec<String>,
    /// Bytes over all blobs that have to be uploaded (layers, configs, manifests, index).
    pub upload_bytes: u64,
}

/// Writes an OCI image layout to `dir` (replacing what is there): an index for `platforms`
/// (`os/arch`), each image with one uncompressed tar layer holding `layer_bytes` random
/// bytes drawn from `seed`. `index.json` names the index `1`, as `-o type=oci` writes it.
pub fn write_push_layout(
    dir: &Path,
    platforms: &[(&str, &str)],
    layer_bytes: u64,
    seed: u64,
) -> Result<PushLayout> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    let mut rng = SplitMix64::new(seed);
    let mut layer_digests = Vec::new();
    let mut upload_bytes = 0;
    let mut manifests = Vec::new();
    for (os, arch) in platforms {
        let (layer_digest, layer_size) = write_random_layer(&blobs, layer_bytes, &mut rng)?;
        upload_bytes += layer_size;
        let config = serde_json::json!({
            "architecture": arch,
            "os": os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        });
        let config = write_json_blob(&blobs, &config)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config.0,
                "size": config.1,
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer_size,
            }],
        });
        let manifest_blob = write_json_blob(&blobs, &manifest)?;
        upload_bytes += config.1 + manifest_blob.1;
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_blob.0,
            "size": manifest_blob.1,
            "platform": {"architecture": arch, "os": os},
        }));
        layer_digests.push(layer_digest);
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let index_blob = write_json_blob(&blobs, &index)?;
    upload_bytes += index_blob.1;
    let top = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_blob.0,
            "size": index_blob.1,
            "annotations": {"org.opencontainers.image.ref.name": "1"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(PushLayout {
        dir: dir.to_path_buf(),
        layer_digests,
        upload_bytes,
    })
}

/// A tar with one file of `bytes` random bytes, stored under its digest; returns the
/// digest and size of the tar.
fn write_random_layer(blobs: &Path, bytes: u64, rng: &mut SplitMix64) -> Result<(String, u64)> {
    let scratch = blobs.join(".layer.partial");
    let file = File::create(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        written: 0,
    };
    {
        let mut tar = tar::Builder::new(&mut out);
        let mut header = tar::Header::new_ustar();
        header.set_path("random.bin")?;
        header.set_size(bytes);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append(&header, RandomReader { rng, left: bytes })?;
        tar.finish()?;
    }
    out.inner.flush()?;
    let digest = format!("sha256:{:x}", out.hasher.finalize());
    let size = out.written;
    let hex = &digest["sha256:".len()..];
    std::fs::rename(&scratch, blobs.join(hex))?;
    Ok((digest, size))
}

fn write_json_blob(blobs: &Path, value: &serde_json::Value) -> Result<(String, u64)> {
    let bytes = serde_json::to_vec(value)?;
    let hex = format!("{:x}", Sha256::digest(&bytes));
    std::fs::write(blobs.join(&hex), &bytes)?;
    Ok((format!("sha256:{hex}"), bytes.len() as u64))
}

/// Counts and hashes what passes through, so a blob is hashed while it is written.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `left` random bytes as a reader.
struct RandomReader<'a> {
    rng: &'a mut SplitMix64,
    left: u64,
}

impl std::io::Read for RandomReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        self.rng.fill(&mut buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_and_fills_odd_lengths() {
        let (mut a, mut b) = (SplitMix64::new(1), SplitMix64::new(1));
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 13]);
        assert_ne!(SplitMix64::new(2).next_u64(), SplitMix64::new(1).next_u64());
    }

    #[test]
    fn file_sizes_sum_exactly_and_vary() {
        let size = ContextSize {
            files: 10_000,
            bytes: 160_000_000,
        };
        let sizes = file_sizes(size);
        assert_eq!(sizes.len(), 10_000);
        assert_eq!(sizes.iter().sum::<u64>(), 160_000_000);
        assert!(sizes.iter().all(|s| *s >= 8_000 && *s <= 24_000));
        assert!(sizes.iter().min() != sizes.iter().max());
    }

    #[test]
    fn bake_print_file_lists_every_service_of_its_matrix() {
        let file = bake_print_file();
        assert!(file.contains(r#"default = ["svc01", "svc02","#), "{file}");
        assert!(file.contains(&format!("\"svc{BAKE_PRINT_SERVICES:02}\"]")));
        // Interpolations reach the file as HCL, not as Rust format placeholders.
        assert!(file.contains("result = \"${REGISTRY}/${name}:${TAG}-${variant}\""));
        assert_eq!(BAKE_PRINT_TARGETS, 50);
    }

    #[test]
    fn bake_context_file_has_one_target_per_variant() {
        let file = bake_context_file(3, "linux/amd64,linux/arm64");
        assert!(
            file.contains(r#"targets = ["part-1", "part-2", "part-3"]"#),
            "{file}"
        );
        assert!(file.contains(r#"platforms = ["linux/amd64", "linux/arm64"]"#));
        assert_eq!(file.matches("VARIANT = ").count(), 3);
        assert!(file.contains("VARIANT = \"3\""));
        assert_eq!(file.matches("type=cacheonly").count(), 1);
    }

    #[test]
    fn push_layout_is_a_valid_two_platform_layout() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-bench-layout-{}", std::process::id()));
        let layout = write_push_layout(&dir, &[("linux", "amd64"), ("linux", "arm64")], 5000, 7)?;
        assert_eq!(layout.layer_digests.len(), 2);
        assert_ne!(layout.layer_digests[0], layout.layer_digests[1]);
        // Every blob is stored under its own digest.
        for entry in std::fs::read_dir(dir.join("blobs/sha256"))? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            assert_eq!(name, format!("{:x}", Sha256::digest(std::fs::read(&path)?)));
        }
        let top: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
        let index_hex = top["manifests"][0]["digest"]
            .as_str()
            .and_then(|d| d.strip_prefix("sha256:"))
            .context("no index digest")?;
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(index_hex))?)?;
        assert_eq!(index["manifests"][1]["platform"]["architecture"], "arm64");
        // The layer is a tar that holds the random file (512-byte header, data, padding).
        let layer_hex = &layout.layer_digests[0]["sha256:".len()..];
        let layer = std::fs::read(dir.join("blobs/sha256").join(layer_hex))?;
        assert!(layer.len() > 5000 && layer.len() % 512 == 0);
        assert_eq!(&layer[..10], b"random.bin");
        assert!(layout.upload_bytes > 10_000);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn fresh_seeds_give_fresh_layers() -> Result<()> {
        let base = std::env::temp_dir().join(format!("xtask-bench-seeds-{}", std::process::id()));
        let a = write_push_layout(&base.join("a"), &[("linux", "amd64")], 1000, 1)?;
        let b = write_push_layout(&base.join("b"), &[("linux", "amd64")], 1000, 2)?;
        assert_ne!(a.layer_digests, b.layer_digests);
        std::fs::remove_dir_all(&base)?;
        Ok(())
    }
}
