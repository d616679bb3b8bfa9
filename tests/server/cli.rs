//! The `lectern` command line: help, config file, errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn help_explains_the_flags_and_env_vars() {
    let out = Command::new(env!("CARGO_BIN_EXE_lectern"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--bind",
        "--data-dir",
        "--config",
        "LECTERN_BIND",
        "LECTERN_DATA_DIR",
        "LECTERN_ADMIN_KEY",
        "serve",
    ] {
        assert!(
            help.contains(needle),
            "--help should mention {needle}:\n{help}"
        );
    }
}

#[test]
fn a_config_file_is_read_and_typos_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "bnd = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lectern"))
        .arg("--config")
        .arg(&bad)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bnd"),
        "the error names the unknown key: {err}"
    );

    let good = tmp.path().join("good.toml");
    let data = tmp.path().join("data");
    std::fs::write(
        &good,
        format!(
            "bind = \"127.0.0.1:0\"\ndata_dir = {:?}\npublic_url = \"https://class.example.org\"\n[limits]\ngrace_secs = 5\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lectern"))
        .arg("--config")
        .arg(&good)
        .env("LECTERN_LOG", "warn")
        .env_remove("LECTERN_ADMIN_KEY")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while printed.len() < 40 {
        let Some(Ok(line)) = lines.next() else { break };
        let done = line.contains("Participant link")
            && printed
                .iter()
                .filter(|l: &&String| l.contains("Participant link"))
                .count()
                == 1;
        printed.push(line);
        if done {
            printed.push(lines.next().unwrap().unwrap());
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let text = printed.join("\n");
    let key = std::fs::read_to_string(data.join("admin.key")).unwrap();
    assert!(
        text.contains(key.trim()),
        "the generated admin key is printed:\n{text}"
    );
    assert_eq!(
        text.matches("https://class.example.org/join?token=")
            .count(),
        4,
        "four demo links:\n{text}"
    );
}
