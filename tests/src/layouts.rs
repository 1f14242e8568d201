//! OCI layouts written through brix-exporter's own layout code, for tests that push them.

use brix_exporter::descriptor::media_type;
use brix_exporter::{Descriptor, OciLayout};

/// `size` bytes from xorshift: fast, incompressible, and different for every (`seed`, `n`),
/// so no registry or client finds them from an earlier run.
pub fn random_bytes(size: usize, seed: u64, n: u64) -> Vec<u8> {
    let mut state = (0x9E37_79B9_7F4A_7C15u64 ^ seed).wrapping_mul(n + 3) | 1;
    let mut data = vec![0u8; size];
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// Writes a linux/`arch` image whose only layer is `layer` (already in the layout;
/// `diff_id` is the digest of its uncompressed content) and returns the manifest's
/// descriptor with its platform set.
pub fn single_layer_image(
    layout: &OciLayout,
    arch: &str,
    layer: &Descriptor,
    diff_id: &str,
) -> Descriptor {
    let config = layout
        .write_blob(
            media_type::OCI_CONFIG,
            format!(
                r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
            )
            .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": config,
        "layers": [layer],
    });
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let mut descriptor = layout
        .write_blob(media_type::OCI_MANIFEST, &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    descriptor.platform = Some(brix_exporter::Platform::new("linux", arch, ""));
    descriptor
}

/// Makes one index over `images` the layout's image (as `-o type=oci` leaves it).
pub fn set_index(layout: &OciLayout, images: &[Descriptor]) {
    let index = brix_exporter::assemble_index(images).unwrap_or_else(|e| panic!("{e}"));
    layout
        .set_image(&index, None)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A two-platform (linux/amd64, linux/arm64) layout at `dir` whose images have one
/// uncompressed `layer_size`-byte layer of fresh random bytes each (new for every `seed`, so
/// nothing is found from an earlier run); returns it with the two layers' digests.
pub fn two_platform_layout(
    dir: &std::path::Path,
    layer_size: usize,
    seed: u64,
) -> (OciLayout, Vec<String>) {
    let layout = OciLayout::create(dir).unwrap_or_else(|e| panic!("{e}"));
    let mut images = Vec::new();
    let mut layers = Vec::new();
    for (n, arch) in ["amd64", "arm64"].iter().enumerate() {
        let data = random_bytes(layer_size, seed, n as u64);
        // Uncompressed: registries do not look inside, and it stays incompressible.
        let layer = layout
            .write_blob("application/vnd.oci.image.layer.v1.tar", &data)
            .unwrap_or_else(|e| panic!("{e}"));
        images.push(single_layer_image(&layout, arch, &layer, &layer.digest));
        layers.push(layer.digest);
    }
    set_index(&layout, &images);
    (layout, layers)
}
