//! A minimal QMP client (QEMU's JSON monitor on a unix socket): enough to
//! stop a guest, migrate its state to a file, wait for an incoming state and
//! continue. Events QEMU sends in between are skipped.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long one QMP command may take to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong talking to QEMU's monitor.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("connecting to QMP socket {}: {source}", socket.display())]
    Connect { socket: PathBuf, source: std::io::Error },
    /// Setting up the connected socket failed.
    #[error("{0}")]
    Socket(std::io::Error),
    #[error("unexpected QMP greeting: {0}")]
    Greeting(Value),
    #[error("QEMU closed the QMP socket")]
    Closed,
    #[error("bad QMP message `{line}`: {source}")]
    BadMessage { line: String, source: serde_json::Error },
    #[error("reading QMP: {0}")]
    Read(std::io::Error),
    /// Sending `command` failed.
    #[error("QMP {command}: {source}")]
    Send { command: String, source: std::io::Error },
    /// No reply to `command` could be read.
    #[error("QMP {command}: {source}")]
    Reply { command: String, source: Box<QmpError> },
    /// QEMU answered `command` with an error.
    #[error("QMP {command}: {desc}")]
    Refused { command: String, desc: String },
    /// QEMU's own words for a failed or cancelled migration.
    #[error("{0}")]
    MigrationFailed(String),
    #[error("not written within {0}s")]
    MigrationTimeout(u64),
}

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (QEMU creates the socket shortly after it starts) and leaves
    /// capabilities negotiation mode.
    pub fn connect(socket: &Path, deadline: Instant) -> Result<Qmp, QmpError> {
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(source) if Instant::now() > deadline => {
                    return Err(QmpError::Connect { socket: socket.to_path_buf(), source })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(QmpError::Socket)?;
        let writer = stream.try_clone().map_err(QmpError::Socket)?;
        let mut qmp = Qmp { reader: BufReader::new(stream), writer };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Greeting(greeting));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs `command` and returns its `return` value, or QEMU's error text.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let line = request_line(command, arguments);
        self.writer
            .write_all(line.as_bytes())
            .map_err(|source| QmpError::Send { command: command.to_string(), source })?;
        self.reply(command)
    }

    /// Runs `command` with `fd` passed along (SCM_RIGHTS), as `getfd` and
    /// `add-fd` want; QEMU keeps its own copy of the descriptor.
    pub fn execute_with_fd(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        fd: std::os::fd::BorrowedFd,
    ) -> Result<Value, QmpError> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        use std::os::fd::{AsRawFd, RawFd};
        let line = request_line(command, arguments);
        let send_err = |e: std::io::Error| QmpError::Send { command: command.to_string(), source: e };
        let fds: [RawFd; 1] = [fd.as_raw_fd()];
        let sent = sendmsg::<()>(
            self.writer.as_raw_fd(),
            &[std::io::IoSlice::new(line.as_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| send_err(e.into()))?;
        // The descriptor went with the first byte; the rest is plain text.
        self.writer.write_all(&line.as_bytes()[sent..]).map_err(send_err)?;
        self.reply(command)
    }

    /// Reads messages until the reply to `command`.
    fn reply(&mut self, command: &str) -> Result<Value, QmpError> {
        let command = command.to_string();
        loop {
            let msg =
                self.read_message().map_err(|e| QmpError::Reply { command: command.clone(), source: Box::new(e) })?;
            if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = msg.get("error") {
                let desc = err["desc"].as_str().unwrap_or("error").to_string();
                return Err(QmpError::Refused { command, desc });
            }
            // An asynchronous event (STOP, RESUME, MIGRATION, ...): not our reply.
        }
    }

    /// Migrates a stopped guest's state to `uri` and waits, polling every
    /// `poll`, until it is written or `deadline` (`timeout` from the start)
    /// has passed.
    pub fn migrate(&mut self, uri: &str, deadline: Instant, poll: Duration, timeout: Duration) -> Result<(), QmpError> {
        self.execute("migrate", Some(json!({ "uri": uri })))?;
        loop {
            let info = self.execute("query-migrate", None)?;
            match info["status"].as_str() {
                Some("completed") => return Ok(()),
                Some("failed") | Some("cancelled") => {
                    let desc = info["error-desc"].as_str().unwrap_or("migration failed");
                    return Err(QmpError::MigrationFailed(desc.to_string()));
                }
                _ if Instant::now() > deadline => return Err(QmpError::MigrationTimeout(timeout.as_secs())),
                _ => std::thread::sleep(poll),
            }
        }
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(QmpError::Closed),
            Ok(_) => serde_json::from_str(&line)
                .map_err(|source| QmpError::BadMessage { line: line.trim().to_string(), source }),
            Err(e) => Err(QmpError::Read(e)),
        }
    }
}

/// One QMP request as a line of JSON.
fn request_line(command: &str, arguments: Option<Value>) -> String {
    let mut request = json!({ "execute": command });
    if let Some(args) = arguments {
        request["arguments"] = args;
    }
    let mut line = request.to_string();
    line.push('\n');
    line
}
