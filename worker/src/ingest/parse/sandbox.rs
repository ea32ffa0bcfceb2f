//! Parsing in a child process under operating-system limits. Parley reads
//! files and pages that strangers control; a parser bug, a decompression bomb
//! or a document nested deep enough to overflow a stack must cost that one
//! document, never the worker or the API. Each document is parsed by a fresh
//! process of the same binary (`parley parse-document`) that, before it reads
//! a byte of the document:
//!
//! - puts itself under an address-space limit (`RLIMIT_AS`) and a CPU-time
//!   limit (`RLIMIT_CPU`), may write no files (`RLIMIT_FSIZE` 0) and leaves
//!   no core;
//! - gives up network sockets for good (a seccomp filter refuses `socket`,
//!   `connect`, `bind`, `listen` and `accept`);
//!
//! It starts with an empty environment in `/`, and the worker kills it when
//! the wall-clock deadline passes.
//!
//! The document's bytes go in on standard input, the parsed [`Document`] (or
//! why it could not be read) comes back as JSON on standard output. How the
//! process ended decides the failure code: out of time or CPU is
//! `PARSE_TIMEOUT`, out of memory is `TOO_LARGE`, anything else (a crash, a
//! stack overflow, garbage on the pipe) is `CORRUPT_DOCUMENT`.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use parley_domain::document::Document;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::in_process::parse_sync;
use super::kind::{Ended, Kind, ParseFailure};

/// The hidden subcommand a sandboxed parser runs.
pub const SUBCOMMAND: &str = "parse-document";

/// Largest answer read back from a parser: a document's text and blocks are
/// a few times its text, which the input size bounds.
const MAX_OUTPUT_BYTES: usize = 256 << 20;
/// Standard error kept to tell how a parser died.
const MAX_STDERR_BYTES: usize = 16 << 10;

/// How parsers are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The program and the arguments before the document's own
    /// (`<parley> parse-document`).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Address space of the process, bytes.
    pub memory_bytes: u64,
    /// CPU time of the process, seconds.
    pub cpu_seconds: u64,
}

impl Sandbox {
    /// This very binary as the parser.
    pub fn current_exe(memory_bytes: u64, cpu_seconds: u64) -> std::io::Result<Sandbox> {
        Ok(Sandbox {
            program: std::env::current_exe()?,
            args: vec![SUBCOMMAND.to_owned()],
            memory_bytes,
            cpu_seconds,
        })
    }
}

/// What a parser answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Parsed(Document),
    Failed {
        code: String,
        message: String,
        /// The parser's code panicked (caught in the child).
        #[serde(default)]
        panicked: bool,
    },
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Html => "html",
        Kind::Pdf => "pdf",
        Kind::Docx => "docx",
        Kind::Markdown => "markdown",
        Kind::Text => "text",
    }
}

fn kind_named(name: &str) -> Option<Kind> {
    Some(match name {
        "html" => Kind::Html,
        "pdf" => Kind::Pdf,
        "docx" => Kind::Docx,
        "markdown" => Kind::Markdown,
        "text" => Kind::Text,
        _ => return None,
    })
}

/// A stable code for a failure code string read back from a parser.
fn stable_code(code: &str) -> &'static str {
    match code {
        "NO_TEXT" => "NO_TEXT",
        "TOO_LARGE" => "TOO_LARGE",
        "PARSE_TIMEOUT" => "PARSE_TIMEOUT",
        "UNSUPPORTED_TYPE" => "UNSUPPORTED_TYPE",
        "ENCRYPTED_DOCUMENT" => "ENCRYPTED_DOCUMENT",
        _ => "CORRUPT_DOCUMENT",
    }
}

/// The seccomp program that refuses network sockets.
fn network_filter() -> Result<seccompiler::BpfProgram, String> {
    use seccompiler::{SeccompAction, SeccompFilter, TargetArch};
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("no seccomp filter for this architecture: {e:?}"))?;
    let denied = [
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
    ];
    let filter = SeccompFilter::new(
        denied.iter().map(|s| (*s, vec![])).collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    filter.try_into().map_err(|e| format!("seccomp filter: {e:?}"))
}

/// The limits a parser process puts itself under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    memory_bytes: u64,
    cpu_seconds: u64,
}

impl Limits {
    /// Applies the limits to this process, for good (hard limits lowered,
    /// the filter cannot be removed). A kernel without seccomp keeps the
    /// resource limits and says so on standard error.
    fn apply(self) -> Result<(), String> {
        use rlimit::Resource;
        let set = |resource: Resource, soft: u64, hard: u64| {
            rlimit::setrlimit(resource, soft, hard).map_err(|e| format!("setrlimit {resource:?}: {e}"))
        };
        set(Resource::AS, self.memory_bytes, self.memory_bytes)?;
        // SIGXCPU at the soft limit, SIGKILL a second later.
        set(Resource::CPU, self.cpu_seconds, self.cpu_seconds + 1)?;
        set(Resource::FSIZE, 0, 0)?;
        set(Resource::CORE, 0, 0)?;
        match network_filter().and_then(|f| seccompiler::apply_filter(&f).map_err(|e| e.to_string())) {
            Ok(()) => {}
            Err(e) => eprintln!("parser: no seccomp filter ({e}); network sockets stay possible"),
        }
        Ok(())
    }
}

/// Parses `bytes` in a sandboxed child process; `deadline` is wall-clock time.
pub async fn parse_in_child(
    sandbox: &Sandbox,
    kind: Kind,
    bytes: Vec<u8>,
    base_url: Option<&str>,
    deadline: Duration,
) -> Result<Document, ParseFailure> {
    let mut command = tokio::process::Command::new(&sandbox.program);
    command
        .args(&sandbox.args)
        .arg(sandbox.memory_bytes.to_string())
        .arg(sandbox.cpu_seconds.to_string())
        .arg(kind_name(kind))
        .args(base_url)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        ParseFailure::new("CORRUPT_DOCUMENT", format!("the parser could not start: {e}")).ended(Ended::Killed)
    })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let run = async {
        // The child may die before reading everything: a broken pipe is
        // then no error of ours, its exit status says what happened.
        let feed = async move {
            let _ = stdin.write_all(&bytes).await;
            drop(stdin);
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        // What is past each limit is read and dropped, so a chatty child
        // never blocks on a full pipe.
        let read_out = async {
            let kept = (&mut stdout)
                .take(MAX_OUTPUT_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .await;
            let _ = tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await;
            kept
        };
        let read_err = async {
            let _ = (&mut stderr).take(MAX_STDERR_BYTES as u64).read_to_end(&mut err).await;
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        };
        let (_, out_result, _) = tokio::join!(feed, read_out, read_err);
        let status = child.wait().await;
        (out_result.map(|_| out), err, status)
    };
    let finished = tokio::time::timeout(deadline, run).await;
    let Ok((out, err, status)) = finished else {
        // Killed now, reaped by the runtime.
        let _ = child.start_kill();
        return Err(ParseFailure::new(
            "PARSE_TIMEOUT",
            format!("parsing took longer than {} seconds", deadline.as_secs()),
        )
        .ended(Ended::TimedOut));
    };
    let status = status
        .map_err(|e| ParseFailure::new("CORRUPT_DOCUMENT", format!("the parser was lost: {e}")).ended(Ended::Killed))?;
    let stderr = String::from_utf8_lossy(&err);
    if !status.success() {
        return Err(died(status, &stderr, sandbox));
    }
    let out = out.map_err(|e| {
        ParseFailure::new("CORRUPT_DOCUMENT", format!("reading the parser's answer: {e}")).ended(Ended::Killed)
    })?;
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(ParseFailure::new("TOO_LARGE", "the document's text is too large"));
    }
    match serde_json::from_slice::<Reply>(&out) {
        Ok(Reply::Parsed(doc)) => Ok(doc),
        Ok(Reply::Failed {
            code,
            message,
            panicked,
        }) => {
            let failure = ParseFailure::new(stable_code(&code), message);
            Err(if panicked {
                failure.ended(Ended::Panicked)
            } else {
                failure
            })
        }
        Err(e) => Err(
            ParseFailure::new("CORRUPT_DOCUMENT", format!("the parser answered nonsense: {e}")).ended(Ended::Killed),
        ),
    }
}

/// Why a parser process ended badly, from its status and what it printed.
fn died(status: std::process::ExitStatus, stderr: &str, sandbox: &Sandbox) -> ParseFailure {
    let signal = status.signal();
    if matches!(signal, Some(libc::SIGXCPU)) || (signal == Some(libc::SIGKILL) && stderr.is_empty()) {
        return ParseFailure::new(
            "PARSE_TIMEOUT",
            format!(
                "parsing used more than {} seconds of processor time",
                sandbox.cpu_seconds
            ),
        )
        .ended(Ended::TimedOut);
    }
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return ParseFailure::new(
            "TOO_LARGE",
            format!(
                "parsing this document needs more than {} MB of memory",
                sandbox.memory_bytes >> 20
            ),
        )
        .ended(Ended::Killed);
    }
    if stderr.contains("has overflowed its stack") {
        return ParseFailure::new("CORRUPT_DOCUMENT", "the document is nested too deeply to read").ended(Ended::Killed);
    }
    let how = match (status.code(), signal) {
        (_, Some(s)) => format!("signal {s}"),
        (Some(c), None) => format!("exit code {c}"),
        (None, None) => "an unknown status".to_owned(),
    };
    tracing::warn!(%how, stderr = %stderr.chars().take(500).collect::<String>(), "a parser process failed");
    ParseFailure::new("CORRUPT_DOCUMENT", format!("the parser failed on this file ({how})")).ended(Ended::Killed)
}

/// The child's side (`parley parse-document MEMORY_BYTES CPU_SECONDS KIND
/// [BASE_URL]`): puts itself under the limits, then reads the document from
/// standard input and writes the answer to standard output. Returns the
/// process exit code.
pub fn child_main(args: &[String]) -> i32 {
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    let (Some(memory_bytes), Some(cpu_seconds), Some(kind)) =
        (number(0), number(1), args.get(2).and_then(|k| kind_named(k)))
    else {
        eprintln!("usage: parley {SUBCOMMAND} MEMORY_BYTES CPU_SECONDS html|pdf|docx|markdown|text [BASE_URL]");
        return 2;
    };
    if let Err(e) = (Limits {
        memory_bytes,
        cpu_seconds,
    })
    .apply()
    {
        eprintln!("parser: {e}");
        return 2;
    }
    let base_url = args.get(3).map(String::as_str);
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut bytes) {
        eprintln!("reading the document: {e}");
        return 2;
    }
    let parsed = std::panic::catch_unwind(|| parse_sync(kind, &bytes, base_url));
    drop(bytes);
    let reply = match parsed {
        Ok(Ok(doc)) => Reply::Parsed(doc),
        Ok(Err(failure)) => Reply::Failed {
            code: failure.code.to_owned(),
            message: failure.message,
            panicked: false,
        },
        Err(_) => Reply::Failed {
            code: "CORRUPT_DOCUMENT".into(),
            message: "the parser failed on this file".into(),
            panicked: true,
        },
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &reply).map_err(std::io::Error::from);
    match written.and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("writing the answer: {e}");
            3
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in parser: a shell script given the arguments a parser gets.
    fn script(body: &str) -> Sandbox {
        Sandbox {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), body.into(), "parser".into()],
            memory_bytes: 512 << 20,
            cpu_seconds: 5,
        }
    }

    async fn outcome(sandbox: &Sandbox, deadline: Duration) -> Result<Document, ParseFailure> {
        parse_in_child(sandbox, Kind::Text, b"some text".to_vec(), None, deadline).await
    }

    #[tokio::test]
    async fn how_a_parser_ends_decides_the_code() {
        let second = Duration::from_secs(10);
        let cases = [
            // Crashes, whatever the cause, cost the document only.
            ("kill -SEGV $$", "CORRUPT_DOCUMENT", "signal 11", Ended::Killed),
            ("exit 3", "CORRUPT_DOCUMENT", "exit code 3", Ended::Killed),
            (
                "echo 'memory allocation of 1073741824 bytes failed' >&2; kill -ABRT $$",
                "TOO_LARGE",
                "512 MB",
                Ended::Killed,
            ),
            (
                "echo \"thread 'main' has overflowed its stack\" >&2; kill -ABRT $$",
                "CORRUPT_DOCUMENT",
                "nested too deeply",
                Ended::Killed,
            ),
            (
                "kill -XCPU $$",
                "PARSE_TIMEOUT",
                "5 seconds of processor time",
                Ended::TimedOut,
            ),
            ("echo 'not json'", "CORRUPT_DOCUMENT", "nonsense", Ended::Killed),
            // Far more on standard error than is kept: drained, not blocking.
            (
                "head -c 1000000 /dev/zero | tr '\\0' x >&2; exit 4",
                "CORRUPT_DOCUMENT",
                "exit code 4",
                Ended::Killed,
            ),
            (
                r#"echo '{"failed":{"code":"NO_TEXT","message":"empty"}}'"#,
                "NO_TEXT",
                "empty",
                Ended::Refused,
            ),
            // A panic caught in the child is told apart from a verdict.
            (
                r#"echo '{"failed":{"code":"CORRUPT_DOCUMENT","message":"boom","panicked":true}}'"#,
                "CORRUPT_DOCUMENT",
                "boom",
                Ended::Panicked,
            ),
            // A code the parser should not know is no code of ours.
            (
                r#"echo '{"failed":{"code":"WHATEVER","message":"odd"}}'"#,
                "CORRUPT_DOCUMENT",
                "odd",
                Ended::Refused,
            ),
        ];
        for (body, code, says, ended) in cases {
            let err = outcome(&script(body), second).await.unwrap_err();
            assert_eq!(err.code, code, "{body}: {err:?}");
            assert!(err.message.contains(says), "{body}: {err:?}");
            assert_eq!(err.ended, ended, "{body}: {err:?}");
        }
        let doc = outcome(
            &script(r#"cat >/dev/null; echo '{"parsed":{"title":"T","blocks":[]}}'"#),
            second,
        )
        .await
        .unwrap();
        assert_eq!(doc.title.as_deref(), Some("T"));
    }

    #[tokio::test]
    async fn a_parser_past_its_deadline_is_killed() {
        let dir = std::env::temp_dir().join(format!("parley-sandbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        let started = std::time::Instant::now();
        let err = outcome(
            &script(&format!("echo $$ > {}; exec sleep 30", pid_file.display())),
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "PARSE_TIMEOUT");
        assert_eq!(err.ended, Ended::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_owned();
        // The process is gone (reaped, or at worst a zombie), not sleeping on.
        let mut gone = false;
        for _ in 0..50 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => gone = true,
                Ok(stat) => gone = stat.split_whitespace().nth(2) == Some("Z"),
            }
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "parser {pid} still runs");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
