//! ChromeDriver and Debian's Chromium, for the tests of the status page in a real headless
//! browser: installed with `apt-get` (packages `chromium`, `chromium-driver`) when missing,
//! ChromeDriver started on loopback; tests open sessions through it with the flags
//! [`CHROME_ARGS`] lists.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::http::request;
use super::{Details, Files, Pairs, detail, process, run_with_env};

/// Where ChromeDriver answers (off its default 9515).
pub(super) const ADDR: &str = "127.0.0.1:19515";
/// Debian's binaries.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The flags a headless Chromium needs here (root, no GPU, no network of its own).
const CHROME_ARGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-background-networking --disable-component-update";

pub(super) fn installed() -> bool {
    Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file()
}

pub(super) fn install() -> Result<(), String> {
    println!("services: installing chromium and chromium-driver (the status page is tested in a headless browser)");
    run_with_env("apt-get", &["update"], &[])?;
    run_with_env("apt-get", &["install", "-y", "chromium", "chromium-driver"], &[("DEBIAN_FRONTEND", "noninteractive")])
}

fn port() -> Result<&'static str, String> {
    ADDR.rsplit_once(':').map(|(_, port)| port).ok_or_else(|| format!("no port in {ADDR}"))
}

pub(super) fn start(files: &Files) -> Result<Pairs, String> {
    let dir = process::temp_dir("chromedriver")?;
    let port = format!("--port={}", port()?);
    let pid = process::spawn(
        files,
        Path::new(CHROMEDRIVER),
        &[&port, "--allowed-ips=127.0.0.1"],
        &dir,
        "onex-chromedriver.log",
    )?;
    Ok(vec![("pid".to_owned(), pid.to_string()), ("dir".to_owned(), dir.to_string_lossy().into_owned())])
}

pub(super) fn stop(_files: &Files, details: &Details) -> Result<(), String> {
    process::stop(detail(details, "pid"), "chromedriver", detail(details, "dir"))
}

pub(super) fn prepare(_files: &Files, _details: &Details, deadline: Instant) -> Result<Pairs, String> {
    loop {
        match request(ADDR, "GET", "/status", None, None) {
            Ok(reply) if reply.status == 200 && reply.json()?["value"]["ready"] == true => break,
            Ok(_) | Err(_) if Instant::now() >= deadline => {
                return Err(format!("ChromeDriver on {ADDR} is not ready"));
            }
            Ok(_) | Err(_) => sleep(Duration::from_millis(200)),
        }
    }
    Ok(vec![
        ("ONEX_WEBDRIVER".to_owned(), format!("http://{ADDR}")),
        ("ONEX_CHROMIUM".to_owned(), PathBuf::from(CHROMIUM).to_string_lossy().into_owned()),
        ("ONEX_CHROME_ARGS".to_owned(), CHROME_ARGS.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromedriver_listens_on_its_own_loopback_port_and_chromium_runs_headless() {
        assert_eq!(port().unwrap(), "19515");
        assert!(ADDR.starts_with("127.0.0.1:"));
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] {
            assert!(CHROME_ARGS.split(' ').any(|f| f == flag), "{flag}");
        }
    }
}
