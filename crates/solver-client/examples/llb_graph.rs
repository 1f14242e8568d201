//! Builds a small LLB graph per platform and prints each op with its digest.
//!
//! ```text
//! cargo run -p brix-solver-client --example llb_graph -- [linux/amd64,linux/arm64] [out-prefix]
//! ```
//!
//! With an output prefix, each platform's `pb.Definition` is also written to
//! `<prefix>-<os>-<arch>.pb` (the bytes a `SolveRequest.definition` carries), so it can be fed
//! to `buildctl build --local context=. < file`-style tools or compared between runs.

use brix_solver_client::llb::{self, ExecMount, FileActions, Platform, digest_of};
use brix_solver_client::proto::pb;
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let platforms = Platform::parse_list(
        &args
            .next()
            .unwrap_or_else(|| "linux/amd64,linux/arm64".into()),
    )?;
    let out_prefix = args.next();

    for platform in platforms {
        let base = llb::image("localhost:5000/busybox:latest")
            .platform(platform.clone())
            .into_state();
        let context = llb::local("context")
            .exclude_patterns(["target", ".git"])
            .into_state();
        let built = base
            .run(["/bin/sh", "-c", "uname -m > /arch && ls /src > /listing"])
            .mount("/src", ExecMount::readonly(&context))
            .custom_name(format!("[{platform}] record the architecture"))
            .root();
        let result = llb::scratch().file(
            FileActions::new()
                .copy(&built, "/arch", "/arch")
                .copy(&built, "/listing", "/listing")
                .custom_name("collect results"),
        );
        let definition = result.marshal(&platform)?;

        println!("{platform}: {} ops", definition.def.len());
        for bytes in &definition.def {
            let op = pb::Op::decode(&bytes[..])?;
            let name = definition
                .metadata
                .get(&digest_of(bytes))
                .and_then(|m| m.description.get("llb.customname").cloned());
            let kind = match &op.op {
                Some(pb::op::Op::Source(s)) => format!("source {}", s.identifier),
                Some(pb::op::Op::Exec(e)) => format!("exec {:?}", e.meta.as_ref().map(|m| &m.args)),
                Some(pb::op::Op::File(f)) => format!("file ({} actions)", f.actions.len()),
                Some(_) => "other".to_owned(),
                None => "terminal".to_owned(),
            };
            let platform = op
                .platform
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .unwrap_or_else(|| "-".into());
            println!(
                "  {}  {:<8} {kind}{}",
                digest_of(bytes),
                platform,
                name.map(|n| format!("  \"{n}\"")).unwrap_or_default()
            );
        }
        if let Some(prefix) = &out_prefix {
            let path = format!("{prefix}-{}-{}.pb", platform.os, platform.architecture);
            std::fs::write(&path, definition.encode_to_vec())?;
            println!("  wrote {path}");
        }
    }
    Ok(())
}
