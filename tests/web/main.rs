//! The browser client: its JSDoc types check with TypeScript, and end-to-end
//! tests (`web-client/tests/*.test.mjs`, node:test + Playwright) pass in
//! headless Chromium against a real server.
//!
//! What the tests need is installed on first use, once per run: Debian's
//! `chromium` and `fonts-noto-cjk` (with apt-get, as root or through
//! `sudo -n`) and `web-client/node_modules` (with `npm ci`). A failed install
//! fails the tests; nothing is skipped.
//!
//! Environment:
//! - `LECTERN_CHROMIUM`: the Chromium binary (default `/usr/bin/chromium`,
//!   installed if missing; a path given here must exist).
//! - `LECTERN_WEB_TESTS`: comma-separated parts of file names, to run only
//!   the matching test files (e.g. `LECTERN_WEB_TESTS=join,seminar`).
//!
//! Screenshots go to `target/web-artifacts/`.

#[path = "../server/common.rs"]
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::{Child, Command};

/// How long the whole browser suite may take.
const E2E_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// The node packages the tests need, as named in `web-client/package.json`.
const NODE_PACKAGES: &[&str] = &["playwright-core", "typescript"];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn web_dir() -> PathBuf {
    repo_root().join("web-client")
}

struct Tools {
    chromium: PathBuf,
}

/// Checks for, and installs when missing, everything the tests need. Runs
/// once per test binary; a failure is remembered and fails every caller.
fn ensure_tools() -> &'static Tools {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    match TOOLS.get_or_init(install_tools) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

fn install_tools() -> Result<Tools, String> {
    let (chromium, chromium_from_env) = match std::env::var_os("LECTERN_CHROMIUM") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), true),
        _ => (PathBuf::from(DEFAULT_CHROMIUM), false),
    };

    let mut packages = Vec::new();
    if !chromium.exists() {
        if chromium_from_env {
            return Err(format!(
                "LECTERN_CHROMIUM is {}, which does not exist; unset it to use \
                 Debian's chromium ({DEFAULT_CHROMIUM}, installed when missing)",
                chromium.display()
            ));
        }
        packages.push("chromium");
    }
    match cjk_font() {
        FontCheck::Present => {}
        FontCheck::Missing => packages.push("fonts-noto-cjk"),
        FontCheck::NoFcList => packages.extend(["fontconfig", "fonts-noto-cjk"]),
    }
    if !packages.is_empty() {
        eprintln!(
            "web tests: installing Debian packages {}",
            packages.join(" ")
        );
        apt_install(&packages)?;
        if !chromium.exists() {
            return Err(format!(
                "apt-get installed {} but {} is still missing",
                packages.join(" "),
                chromium.display()
            ));
        }
        if cjk_font() != FontCheck::Present {
            return Err(format!(
                "apt-get installed {} but `fc-list :lang=zh` still lists no font",
                packages.join(" ")
            ));
        }
    }

    let web = web_dir();
    let node_runs = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_runs {
        return Err(
            "Node.js (`node`) is not on PATH: the web tests need Node.js 20 \
             or newer and npm; install them (e.g. `apt-get install nodejs npm`)"
                .into(),
        );
    }
    let stale = stale_node_packages(&web)?;
    if !stale.is_empty() {
        eprintln!(
            "web tests: {} not installed as locked; running `npm ci` in {}",
            stale.join(", "),
            web.display()
        );
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&web)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("could not run npm ({e}); install Node.js and npm"))?;
        if !status.success() {
            return Err(format!(
                "`npm ci --no-audit --no-fund` in {} failed ({status}); run it by hand \
                 and look at npm's output",
                web.display()
            ));
        }
        let still = stale_node_packages(&web)?;
        if !still.is_empty() {
            return Err(format!(
                "`npm ci` ran but {} is still not installed as package-lock.json says",
                still.join(", ")
            ));
        }
    }
    Ok(Tools { chromium })
}

#[derive(PartialEq)]
enum FontCheck {
    Present,
    Missing,
    NoFcList,
}

/// Whether a Chinese font is installed (what `fc-list :lang=zh` lists).
fn cjk_font() -> FontCheck {
    match std::process::Command::new("fc-list")
        .args([":lang=zh", "family"])
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() && !out.stdout.trim_ascii().is_empty() => {
            FontCheck::Present
        }
        Ok(_) => FontCheck::Missing,
        Err(_) => FontCheck::NoFcList,
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `apt-get install -y --no-install-recommends`, as root or with `sudo -n`;
/// runs `apt-get update` and tries again if the first install fails.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    let root = is_root();
    let apt = |args: &[&str]| -> Result<bool, String> {
        let mut cmd = if root {
            std::process::Command::new("apt-get")
        } else {
            let mut c = std::process::Command::new("sudo");
            c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            c
        };
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        let status = cmd.status().map_err(|e| {
            format!(
                "could not run {} ({e})",
                if root { "apt-get" } else { "sudo" }
            )
        })?;
        Ok(status.success())
    };
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend_from_slice(packages);
    let how = format!(
        "install them by hand: `sudo apt-get update && sudo apt-get install -y \
         --no-install-recommends {}`",
        packages.join(" ")
    );
    let ok = match apt(&install) {
        Ok(true) => true,
        Ok(false) => {
            eprintln!("web tests: apt-get install failed; running apt-get update and trying again");
            apt(&["update"]).map_err(|e| format!("{e}; {how}"))?
                && apt(&install).map_err(|e| format!("{e}; {how}"))?
        }
        Err(e) => return Err(format!("{e}; {how}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "could not install the Debian packages {} that the web tests need \
             (apt-get failed{}); {how}",
            packages.join(" "),
            if root {
                ""
            } else {
                ", or `sudo -n` asked for a password"
            }
        ))
    }
}

/// The node packages whose installed version is not the one in
/// `package-lock.json` (or that are not installed at all).
fn stale_node_packages(web: &Path) -> Result<Vec<String>, String> {
    let lock_path = web.join("package-lock.json");
    let lock: serde_json::Value = std::fs::read_to_string(&lock_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .ok_or_else(|| format!("cannot read {}", lock_path.display()))?;
    let mut stale = Vec::new();
    for name in NODE_PACKAGES {
        let key = format!("node_modules/{name}");
        let want = lock["packages"][key.as_str()]["version"]
            .as_str()
            .ok_or_else(|| {
                format!(
                    "{} does not lock {name}: run `npm install` in {}",
                    lock_path.display(),
                    web.display()
                )
            })?;
        let have: Option<String> = std::fs::read_to_string(web.join(key).join("package.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["version"].as_str().map(str::to_string));
        if have.as_deref() != Some(want) {
            stale.push(format!("{name}@{want}"));
        }
    }
    Ok(stale)
}

/// The end-to-end test files, relative to `web-client/`, sorted.
fn test_files() -> Vec<String> {
    let dir = web_dir().join("tests");
    let filter: Vec<String> = std::env::var("LECTERN_WEB_TESTS")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".test.mjs"))
        .filter(|n| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str())))
        .map(|n| format!("tests/{n}"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no test files in {} match LECTERN_WEB_TESTS={filter:?}",
        dir.display()
    );
    files
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group only;
    // the group is the node test runner's, which this test spawned.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Stops the node runner and the test files it started (all in its process
/// group): SIGTERM first, so Playwright closes its browsers, then SIGKILL.
async fn stop_group(pgid: i32, child: &mut Child) {
    signal_group(pgid, libc::SIGTERM);
    tokio::time::sleep(Duration::from_secs(5)).await;
    signal_group(pgid, libc::SIGKILL);
    let _ = child.wait().await;
}

#[tokio::test]
async fn web_client_type_checks() {
    ensure_tools();
    let web = web_dir();
    let out = Command::new("node")
        .args(["node_modules/typescript/bin/tsc", "-p", "."])
        .current_dir(&web)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run node");
    assert!(
        out.status.success(),
        "`tsc -p .` in {} failed ({}):\n{}{}",
        web.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_end_to_end() {
    let tools = ensure_tools();
    let artifacts = repo_root().join("target").join("web-artifacts");
    std::fs::create_dir_all(&artifacts)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", artifacts.display()));
    let files = test_files();

    let server = common::TestServer::start().await;
    let mut child = Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .args(files)
        .current_dir(web_dir())
        .env("LECTERN_URL", &server.base)
        .env("LECTERN_ADMIN_KEY", &server.admin_key)
        .env("LECTERN_ARTIFACTS", &artifacts)
        .env("LECTERN_CHROMIUM", &tools.chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        // Its own process group, so a timeout can stop every test file too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("run node --test");
    let pgid = child.id().expect("node has a pid") as i32;

    enum End {
        Exited(std::process::ExitStatus),
        TimedOut,
        Interrupted,
    }
    let end = tokio::select! {
        s = child.wait() => End::Exited(s.expect("wait for node")),
        _ = tokio::time::sleep(E2E_TIMEOUT) => End::TimedOut,
        // The runner is outside the terminal's process group, so Ctrl-C
        // would not reach it: stop it here, then exit as Ctrl-C would.
        Ok(()) = tokio::signal::ctrl_c() => End::Interrupted,
    };
    match end {
        End::Exited(status) => {
            server.stop().await;
            assert!(
                status.success(),
                "browser end-to-end tests failed ({status}); see the node:test output \
                 above and the screenshots in {}",
                artifacts.display()
            );
        }
        End::TimedOut => {
            stop_group(pgid, &mut child).await;
            server.stop().await;
            panic!(
                "browser end-to-end tests did not finish within {} minutes; stopped them",
                E2E_TIMEOUT.as_secs() / 60
            );
        }
        End::Interrupted => {
            stop_group(pgid, &mut child).await;
            server.stop().await;
            std::process::exit(130);
        }
    }
}
