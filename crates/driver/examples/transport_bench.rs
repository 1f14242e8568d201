//! Compares the two ways to reach a docker-container builder on a local engine:
//! `docker exec buildctl dial-stdio` (what brix uses) and the daemon's unix socket reached
//! directly through `/proc/<pid>/root` of the container.
//!
//! ```text
//! cargo run -p brix-driver --example transport_bench -- <node-name> [rounds]
//! ```
//! The builder must be running (`brix inspect --bootstrap`).

use std::time::{Duration, Instant};

use brix_driver::Driver;
use brix_driver::docker_api::current_docker_endpoint;
use brix_driver::docker_container::DockerContainerDriver;
use brix_solver_client::ControlClient;

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.2} ms, p90 {:.2} ms, min {:.2} ms",
        ms(v[v.len() / 2]),
        ms(v[v.len() * 9 / 10]),
        ms(v[0])
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let node = args
        .next()
        .ok_or("usage: transport_bench <node-name> [rounds]")?;
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20);
    let driver = DockerContainerDriver::new(
        &node,
        &current_docker_endpoint(),
        &Default::default(),
        vec![],
        Default::default(),
    )?;
    let pid = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", driver.container_name()])
        .output()?;
    let pid = String::from_utf8(pid.stdout)?.trim().to_string();
    let sock = format!("/proc/{pid}/root/run/buildkit/buildkitd.sock");

    // Connection setup + first call, fresh each round.
    let (mut exec_cold, mut sock_cold) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let c = driver.connect().await?;
        c.list_workers().await?;
        exec_cold.push(t.elapsed());
        let t = Instant::now();
        let c = ControlClient::connect_unix(&sock).await?;
        c.list_workers().await?;
        sock_cold.push(t.elapsed());
    }
    // Calls on one warm connection.
    let exec = driver.connect().await?;
    let direct = ControlClient::connect_unix(&sock).await?;
    let (mut exec_warm, mut sock_warm) = (Vec::new(), Vec::new());
    for _ in 0..rounds * 10 {
        let t = Instant::now();
        exec.list_workers().await?;
        exec_warm.push(t.elapsed());
        let t = Instant::now();
        direct.list_workers().await?;
        sock_warm.push(t.elapsed());
    }
    println!("connect + ListWorkers, dial-stdio: {}", stats(exec_cold));
    println!("connect + ListWorkers, socket:     {}", stats(sock_cold));
    println!("ListWorkers warm, dial-stdio:      {}", stats(exec_warm));
    println!("ListWorkers warm, socket:          {}", stats(sock_warm));
    Ok(())
}
