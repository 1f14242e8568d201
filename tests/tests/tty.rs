//! The tty progress display in a real terminal (tmux): a two-platform build's steps are
//! listed in the order they started, the header stays on screen while the frame is taller
//! than the terminal, and the final frame leaves nothing of earlier frames behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use brix_e2e::{E2eEnv, path, run, unique_name};

const ROWS: usize = 14;

fn tmux(socket: &Path, args: &[&str]) -> String {
    run(Command::new("tmux").arg("-S").arg(socket).args(args))
        .ok()
        .stdout
}

#[test]
fn two_platform_build_frames_in_a_real_terminal() {
    let Some(env) = E2eEnv::get() else { return };
    let store = env.scratch_dir("tty-store");
    let name = unique_name("tty");
    env.create_builder(&store, &name, "");
    run(env.brix_in(&store).args(["inspect", "--bootstrap", &name])).ok();

    let ctx = env.scratch_dir("tty-ctx");
    let marker = unique_name("tty-marker");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo {marker} && for i in 1 2 3 4 5 6; do echo line $i; sleep 0.2; done\n\
             RUN echo second > /second\nRUN echo third > /third\n",
            env.busybox
        ),
    )
    .expect("Dockerfile");
    let done = env.scratch_dir("tty-done").join("done");
    let socket = env.scratch_dir("tty-tmux").join("tmux.sock");
    let script = format!(
        "BRIX_CONFIG={} DOCKER_HOST={} {} build --builder {name} --progress tty \
         --platform linux/amd64,linux/arm64 -o type=cacheonly {}; touch {}; sleep 600",
        path(&store),
        env.docker_host,
        path(&env.brix_bin),
        path(&ctx),
        path(&done)
    );
    tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            &ROWS.to_string(),
            "sh",
            "-c",
            &script,
        ],
    );

    // While it runs: every frame on screen has its header.
    let started = Instant::now();
    let mut frames = 0;
    while !done.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the build did not end"
        );
        let mut screen = tmux(&socket, &["capture-pane", "-p"]);
        let headless = |screen: &str| {
            screen.lines().any(|l| l.starts_with(" => "))
                && !screen.lines().any(|l| l.starts_with("[+] Building"))
        };
        if headless(&screen) {
            // A capture can land in the middle of a redraw (on a loaded machine the
            // terminal may show half of it): a frame is headless only if it stays so.
            std::thread::sleep(Duration::from_millis(50));
            screen = tmux(&socket, &["capture-pane", "-p"]);
            // The final frame is taller than the screen (it lists every step) and scrolls
            // its header off once the build has ended, before the script marks it done:
            // that one is checked in the scrollback below.
            let finished = || {
                tmux(&socket, &["capture-pane", "-p", "-S", "-"])
                    .lines()
                    .any(|l| l.starts_with("[+] Building") && l.contains("FINISHED"))
            };
            assert!(
                !headless(&screen) || finished(),
                "a frame without its header:\n{screen}"
            );
        }
        if screen.lines().any(|l| l.starts_with(" => ")) {
            frames += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let all = tmux(&socket, &["capture-pane", "-p", "-S", "-"]);
    let _ = Command::new("tmux")
        .arg("-S")
        .arg(&socket)
        .arg("kill-server")
        .status();
    let _ = run(env.brix_in(&store).args(["rm", "--force", &name]));
    assert!(frames > 0, "no frame was seen:\n{all}");

    // One final frame, nothing left of earlier ones.
    let headers: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("[+] Building"))
        .collect();
    assert_eq!(headers.len(), 1, "{all}");
    assert!(headers[0].contains("FINISHED"), "{all}");
    assert!(
        !all.contains(" => => # "),
        "log lines of finished steps stayed:\n{all}"
    );
    // Each platform's steps in start order.
    for platform in ["linux/amd64", "linux/arm64"] {
        let position = |step: &str| {
            all.lines()
                .position(|l| l.contains(&format!("[{platform} {step}]")))
                .unwrap_or_else(|| panic!("no step {platform} {step}:\n{all}"))
        };
        let (one, two, three, four) = (
            position("1/4"),
            position("2/4"),
            position("3/4"),
            position("4/4"),
        );
        assert!(
            one < two && two < three && three < four,
            "{platform} out of order:\n{all}"
        );
    }
}
