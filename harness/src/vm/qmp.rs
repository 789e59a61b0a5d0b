//! A minimal QMP client (QEMU's JSON monitor on a unix socket): enough to
//! stop a guest, migrate its state to a file, wait for an incoming state and
//! continue. Events QEMU sends in between are skipped.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long one QMP command may take to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (QEMU creates the socket shortly after it starts) and leaves
    /// capabilities negotiation mode.
    pub fn connect(socket: &Path, deadline: Instant) -> Result<Qmp, String> {
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("connecting to QMP socket {}: {e}", socket.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut qmp = Qmp { reader: BufReader::new(stream), writer };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("unexpected QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs `command` and returns its `return` value, or QEMU's error text.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        let mut request = json!({ "execute": command });
        if let Some(args) = arguments {
            request["arguments"] = args;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(|e| format!("QMP {command}: {e}"))?;
        loop {
            let msg = self.read_message().map_err(|e| format!("QMP {command}: {e}"))?;
            if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = msg.get("error") {
                return Err(format!("QMP {command}: {}", err["desc"].as_str().unwrap_or("error")));
            }
            // An asynchronous event (STOP, RESUME, MIGRATION, ...): not our reply.
        }
    }

    fn read_message(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("QEMU closed the QMP socket".into()),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("bad QMP message `{}`: {e}", line.trim())),
            Err(e) => Err(format!("reading QMP: {e}")),
        }
    }
}
