//! A one-line progress indicator on stderr, shown only for many files on a terminal.

use std::io::{IsTerminal, Write};

/// Shows `[done/total] current-file` while a command works through files.
#[derive(Debug)]
pub(super) struct Progress {
    total: usize,
    done: usize,
    active: bool,
}

impl Progress {
    /// Active when there are at least two files and stderr is a terminal.
    pub(super) fn new(total: usize) -> Self {
        Self { total, done: 0, active: total > 1 && std::io::stderr().is_terminal() }
    }

    /// Announces the next file.
    pub(super) fn next(&mut self, name: &str) {
        self.done += 1;
        if self.active {
            let name: String = name.chars().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K[{}/{}] {name}", self.done, self.total);
        }
    }

    /// Clears the line before a message or the summary.
    pub(super) fn clear(&self) {
        if self.active {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}
