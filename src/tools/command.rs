//! Running a command: an argv vector (never a shell), with a timeout, its exit code and
//! output collected.

use std::time::Duration;

use super::ToolOutcome;

/// How long a command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a command did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("empty command")]
    Empty,
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{program}: {source}")]
    Wait { program: String, source: std::io::Error },
    #[error("{program} did not finish within {} s", COMMAND_TIMEOUT.as_secs())]
    TimedOut { program: String },
}

impl<T> From<CommandError> for ToolOutcome<T> {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::TimedOut { .. } => ToolOutcome::TimedOut,
            e => ToolOutcome::Failed(e.to_string()),
        }
    }
}

impl CommandError {
    /// As a tool outcome summarises it (`timed out`, `failed: …`).
    pub fn summary(self) -> String {
        ToolOutcome::<()>::from(self).summary()
    }
}

/// Runs an argv with a timeout, `stdin` fed to it: its exit code (-1 when killed by a
/// signal) and its output (stdout, then stderr).
pub async fn run(argv: &[String], stdin: Option<&str>) -> Result<(i32, String), CommandError> {
    use tokio::io::AsyncWriteExt;
    let Some((prog, args)) = argv.split_first() else {
        return Err(CommandError::Empty);
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| CommandError::Spawn { program: prog.clone(), source })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input.as_bytes()).await;
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Err(_) => Err(CommandError::TimedOut { program: prog.clone() }),
        Ok(Err(source)) => Err(CommandError::Wait { program: prog.clone(), source }),
        Ok(Ok(out)) => {
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            Ok((out.status.code().unwrap_or(-1), text))
        }
    }
}
