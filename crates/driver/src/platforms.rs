//! Which platforms a node's workers cannot run, and the one-line hint that says how to add
//! QEMU emulation for them. `brix inspect` prints the hint under a builder; `brix build`
//! refuses a platform no node supports with [`crate::binfmt::suggestion_for`].

use brix_config::Platform;

use crate::binfmt::Arch;

/// The platforms multi-arch images are usually built for. A node whose workers report none
/// of these besides its own is a node without (working) QEMU emulation.
pub const COMMON_PLATFORMS: [&str; 6] = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/riscv64",
    "linux/ppc64le",
    "linux/s390x",
];

/// Platforms a node should be able to run but whose workers do not report them: first the
/// node's pinned platforms (`create --platform`), then [`COMMON_PLATFORMS`], without
/// duplicates. `reported` are the workers' platforms as BuildKit lists them
/// (`linux/amd64/v2`, `linux/arm/v7`, ...); strings that do not parse are ignored.
pub fn missing_platforms(pinned: &[Platform], reported: &[String]) -> Vec<Platform> {
    let reported: Vec<Platform> = reported
        .iter()
        .filter_map(|p| Platform::parse(p).ok())
        .collect();
    let common = COMMON_PLATFORMS
        .iter()
        .filter_map(|p| Platform::parse(p).ok());
    let mut missing: Vec<Platform> = Vec::new();
    for wanted in pinned.iter().cloned().chain(common) {
        let runs = reported.iter().any(|r| same_platform(r, &wanted));
        if !runs && !missing.iter().any(|m| same_platform(m, &wanted)) {
            missing.push(wanted);
        }
    }
    missing
}

/// Compares OS, architecture and variant only (not OS version or features), after the
/// normalisation [`Platform::parse`] applies (`linux/arm64/v8` is `linux/arm64`).
fn same_platform(a: &Platform, b: &Platform) -> bool {
    a.os == b.os && a.architecture == b.architecture && a.variant == b.variant
}

/// One line telling the user that node `node` cannot run `missing`, and the `brix binfmt`
/// command that adds QEMU emulators for them. `None` when nothing is missing. Platforms QEMU
/// user mode cannot emulate (another OS, an unknown architecture) are named without a command.
pub fn emulation_hint(node: &str, missing: &[Platform]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
    let mut arches: Vec<Arch> = Vec::new();
    for p in missing {
        if let Ok(arch) = Arch::parse(&p.to_string())
            && !arches.contains(&arch)
        {
            arches.push(arch);
        }
    }
    let list = names.join(", ");
    if arches.is_empty() {
        return Some(format!(
            "hint: node {node} cannot run {list}, and QEMU cannot emulate it: add a node that runs it natively with `brix create --append`"
        ));
    }
    let install: Vec<String> = arches.iter().map(ToString::to_string).collect();
    Some(format!(
        "hint: node {node} cannot run {list}: run `brix binfmt --install {}` on the builder's host to emulate {} with QEMU",
        install.join(","),
        if missing.len() == 1 { "it" } else { "them" }
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_fully_emulating_node_misses_nothing() {
        let reported = strings(&[
            "linux/amd64",
            "linux/amd64/v2",
            "linux/arm64",
            "linux/riscv64",
            "linux/ppc64le",
            "linux/s390x",
            "linux/386",
            "linux/arm/v7",
            "linux/arm/v6",
        ]);
        assert!(missing_platforms(&[], &reported).is_empty());
        assert_eq!(emulation_hint("b0", &[]), None);
    }

    #[test]
    fn a_node_without_qemu_misses_the_common_foreign_platforms() {
        let reported = strings(&["linux/amd64", "linux/amd64/v2", "linux/386"]);
        let missing: Vec<String> = missing_platforms(&[], &reported)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            missing,
            [
                "linux/arm64",
                "linux/arm/v7",
                "linux/riscv64",
                "linux/ppc64le",
                "linux/s390x"
            ]
        );
        let hint = emulation_hint("b0", &missing_platforms(&[], &reported)).unwrap();
        assert!(!hint.contains('\n'), "{hint}");
        assert!(
            hint.contains("`brix binfmt --install arm64,arm,riscv64,ppc64le,s390x`"),
            "{hint}"
        );
        assert!(
            hint.contains("node b0 cannot run linux/arm64, linux/arm/v7"),
            "{hint}"
        );
    }

    #[test]
    fn pinned_platforms_come_first_and_arm64_v8_counts_as_arm64() {
        let pinned = vec![
            Platform::parse("linux/mips64le").unwrap(),
            Platform::parse("linux/arm64").unwrap(),
        ];
        let reported = strings(&[
            "linux/amd64",
            "linux/arm64/v8",
            "linux/riscv64",
            "linux/ppc64le",
            "linux/s390x",
            "linux/arm/v7",
        ]);
        let missing = missing_platforms(&pinned, &reported);
        assert_eq!(missing, [Platform::parse("linux/mips64le").unwrap()]);
        let hint = emulation_hint("n1", &missing).unwrap();
        assert!(hint.contains("`brix binfmt --install mips64le`"), "{hint}");
        assert!(hint.ends_with("emulate it with QEMU"), "{hint}");
    }

    #[test]
    fn platforms_qemu_cannot_emulate_get_no_install_command() {
        let missing = vec![Platform::parse("windows/amd64").unwrap()];
        let hint = emulation_hint("w0", &missing).unwrap();
        assert!(!hint.contains("binfmt"), "{hint}");
        assert!(hint.contains("natively"), "{hint}");
    }
}
