//! Lists a BuildKit daemon's version, workers, platforms and GC policy.
//!
//! ```text
//! cargo run -p brix-solver-client --example workers -- /run/buildkit/buildkitd.sock
//! ```
//! The argument is a unix socket path, or a `unix://` / `tcp://` address.

use brix_solver_client::ControlClient;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(target) = std::env::args().nth(1) else {
        eprintln!("usage: workers <buildkitd socket path | unix://... | tcp://host:port>");
        return ExitCode::from(2);
    };
    match run(&target).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(target: &str) -> Result<(), brix_solver_client::ClientError> {
    let client = if target.contains("://") {
        ControlClient::connect(target, None).await?
    } else {
        ControlClient::connect_unix(target).await?
    };
    println!("Endpoint:  {}", client.endpoint());
    // Info is missing on daemons older than v0.11; the workers carry the version too.
    match client.info().await {
        Ok(version) => println!("BuildKit:  {version}"),
        Err(err) => println!("BuildKit:  unknown ({err})"),
    }
    for worker in client.list_workers().await? {
        println!();
        println!("Worker:    {}", worker.id);
        if let Some(executor) = worker.executor() {
            println!("Executor:  {executor}");
        }
        let platforms: Vec<String> = worker.platforms.iter().map(ToString::to_string).collect();
        println!("Platforms: {}", platforms.join(", "));
        println!("Labels:");
        for (key, value) in &worker.labels {
            println!("  {key}: {value}");
        }
        for (i, rule) in worker.gc_policy.iter().enumerate() {
            println!("GC policy rule #{i}:");
            println!("  All:            {}", rule.all);
            if !rule.filters.is_empty() {
                println!("  Filters:        {}", rule.filters.join(" "));
            }
            if rule.keep_duration != 0 {
                let secs = rule.keep_duration / 1_000_000_000;
                println!("  Keep duration:  {secs}s");
            }
            println!("  Reserved space: {} bytes", rule.reserved_space);
            println!("  Max used space: {} bytes", rule.max_used_space);
            println!("  Min free space: {} bytes", rule.min_free_space);
        }
    }
    Ok(())
}
