//! Prints which foreign architectures this host can run in containers, using the
//! `brix_driver::binfmt` API: `cargo run -p brix-driver --example binfmt_status`.

use brix_driver::binfmt::{self, BinfmtMisc};

fn main() {
    let system = BinfmtMisc::system();
    if !system.is_mounted() {
        eprintln!(
            "binfmt_misc is not mounted at {}: registrations are not visible \
             (run `brix binfmt` as root to mount it)",
            system.root().display()
        );
    }
    let statuses = match system.status() {
        Ok(statuses) => statuses,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    };
    for status in statuses {
        let how = match &status.entry {
            Some(entry) => format!(
                "{} via {} (flags {:?})",
                status.state.as_str(),
                entry.interpreter.display(),
                entry.flags
            ),
            None => status.state.as_str().to_string(),
        };
        println!("{:<16} {how}", status.platform);
        if !status.state.usable_in_containers()
            && let Some(hint) = binfmt::suggestion_for(status.platform)
        {
            println!("{:<16}   {hint}", "");
        }
    }
}
