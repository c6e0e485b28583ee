//! The shell's line editor: bytes from a terminal in, a finished line (or nothing) out, and
//! what to echo back so the terminal shows the line being edited. It understands what a
//! terminal sends for the keys a shell user presses: printable characters, Enter (CR, LF or
//! CR LF), Backspace (DEL or BS), Ctrl-U (kill the line), Ctrl-C (abandon it), and the up and
//! down arrows (`ESC [ A`, `ESC [ B`, or `ESC O A/B` in application mode) to walk a bounded
//! history. Other control bytes and escape sequences are swallowed: nothing typed can make the
//! editor echo a control sequence other than its own.
//!
//! Hardware-free and host-tested: the shell feeds it the bytes it reads from the serial line.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// Longest line kept (longer input is ignored past it, with a bell).
pub const MAX_LINE: usize = 256;
/// Lines of history kept.
pub const HISTORY: usize = 32;

/// Where the editor is in an escape sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    None,
    /// After ESC.
    Start,
    /// After `ESC [` or `ESC O`: parameters until a final byte.
    Csi,
}

/// The line being edited and the history.
#[derive(Debug)]
pub struct Editor {
    line: Vec<u8>,
    history: VecDeque<String>,
    /// Index into `history` while walking it (None: editing a fresh line).
    walk: Option<usize>,
    esc: Esc,
    /// The last byte was CR (an LF right after it ends nothing).
    after_cr: bool,
}

impl Default for Editor {
    fn default() -> Self {
        Self::new()
    }
}

impl Editor {
    pub fn new() -> Self {
        Editor {
            line: Vec::new(),
            history: VecDeque::new(),
            walk: None,
            esc: Esc::None,
            after_cr: false,
        }
    }

    /// The line as typed so far.
    pub fn current(&self) -> &[u8] {
        &self.line
    }

    /// The history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.history.iter().map(String::as_str)
    }

    /// Takes one byte; appends to `echo` what the terminal should be sent, and returns the
    /// finished line when the byte ends one (Enter). A non-empty line enters the history
    /// (unless it repeats the last one).
    pub fn feed(&mut self, b: u8, echo: &mut Vec<u8>) -> Option<String> {
        let after_cr = core::mem::replace(&mut self.after_cr, b == b'\r');
        match self.esc {
            Esc::Start => {
                self.esc = if b == b'[' || b == b'O' { Esc::Csi } else { Esc::None };
                return None;
            }
            Esc::Csi => {
                // Parameter and intermediate bytes go on; a final byte (0x40..0x7e) ends it.
                if (0x40..=0x7e).contains(&b) {
                    self.esc = Esc::None;
                    match b {
                        b'A' => self.walk_history(true, echo),
                        b'B' => self.walk_history(false, echo),
                        _ => {}
                    }
                } else if !(0x20..=0x3f).contains(&b) {
                    self.esc = Esc::None;
                }
                return None;
            }
            Esc::None => {}
        }
        match b {
            b'\r' | b'\n' => {
                if b == b'\n' && after_cr {
                    return None;
                }
                echo.extend_from_slice(b"\r\n");
                let line = String::from_utf8_lossy(&core::mem::take(&mut self.line)).into_owned();
                self.walk = None;
                let trimmed = line.trim();
                if !trimmed.is_empty() && self.history.back().map(String::as_str) != Some(trimmed) {
                    if self.history.len() == HISTORY {
                        self.history.pop_front();
                    }
                    self.history.push_back(trimmed.into());
                }
                Some(line)
            }
            0x7f | 0x08 => {
                if self.line.pop().is_some() {
                    echo.extend_from_slice(b"\x08 \x08");
                }
                None
            }
            0x15 => {
                self.replace_line(Vec::new(), echo);
                None
            }
            0x03 => {
                // Ctrl-C: the line is abandoned, a fresh prompt follows.
                self.line.clear();
                self.walk = None;
                echo.extend_from_slice(b"^C\r\n");
                Some(String::new())
            }
            0x1b => {
                self.esc = Esc::Start;
                None
            }
            0x20..=0x7e => {
                if self.line.len() < MAX_LINE {
                    self.line.push(b);
                    echo.push(b);
                } else {
                    echo.push(0x07);
                }
                None
            }
            _ => None,
        }
    }

    /// Up (`older`) or down the history, showing the entry in place of the current line.
    fn walk_history(&mut self, older: bool, echo: &mut Vec<u8>) {
        let n = self.history.len();
        let next = match (self.walk, older) {
            (None, true) if n > 0 => Some(n - 1),
            (None, _) => return,
            (Some(i), true) => Some(i.saturating_sub(1)),
            (Some(i), false) if i + 1 < n => Some(i + 1),
            (Some(_), false) => None,
        };
        self.walk = next;
        let text = next.map(|i| self.history[i].as_bytes().to_vec()).unwrap_or_default();
        self.replace_line(text, echo);
    }

    /// Erases the shown line and shows `text` instead.
    fn replace_line(&mut self, text: Vec<u8>, echo: &mut Vec<u8>) {
        for _ in 0..self.line.len() {
            echo.extend_from_slice(b"\x08 \x08");
        }
        echo.extend_from_slice(&text);
        self.line = text;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input`; returns the lines finished and everything echoed.
    fn run(e: &mut Editor, input: &[u8]) -> (Vec<String>, Vec<u8>) {
        let (mut lines, mut echo) = (Vec::new(), Vec::new());
        for &b in input {
            if let Some(l) = e.feed(b, &mut echo) {
                lines.push(l);
            }
        }
        (lines, echo)
    }

    #[test]
    fn enter_finishes_a_line_and_crlf_is_one_enter() {
        let mut e = Editor::new();
        let (lines, echo) = run(&mut e, b"list\r\nhelp\n");
        assert_eq!(lines, ["list", "help"]);
        assert_eq!(echo, b"list\r\nhelp\r\n");
        // An empty Enter is still a line (the shell prints a fresh prompt).
        assert_eq!(run(&mut e, b"\r").0, [""]);
    }

    #[test]
    fn backspace_and_kill_edit_the_line() {
        let mut e = Editor::new();
        let (lines, echo) = run(&mut e, b"lsx\x7f\x7f\x08ist\r");
        assert_eq!(lines, ["ist"]);
        assert!(echo.starts_with(b"lsx\x08 \x08\x08 \x08\x08 \x08ist"));
        // Backspace on an empty line echoes nothing.
        assert_eq!(run(&mut e, b"\x7f").1, b"");
        let (lines, _) = run(&mut e, b"garbage\x15list\r");
        assert_eq!(lines, ["list"]);
    }

    #[test]
    fn arrows_walk_the_history_and_back() {
        let mut e = Editor::new();
        run(&mut e, b"list\rpause 1\rlist\r");
        assert_eq!(e.history().collect::<Vec<_>>(), ["list", "pause 1", "list"]);
        run(&mut e, b"x\x1b[A");
        assert_eq!(e.current(), b"list");
        run(&mut e, b"\x1b[A");
        assert_eq!(e.current(), b"pause 1");
        run(&mut e, b"\x1bOA\x1bOA\x1b[A");
        assert_eq!(e.current(), b"list", "the oldest entry stays put");
        run(&mut e, b"\x1b[B");
        assert_eq!(e.current(), b"pause 1");
        run(&mut e, b"\x1b[B\x1b[B");
        assert_eq!(e.current(), b"", "past the newest: an empty line");
        let (lines, _) = run(&mut e, b"\x1b[A\x1b[A\r");
        assert_eq!(lines, ["pause 1"]);
    }

    #[test]
    fn repeats_are_kept_once_and_the_history_is_bounded() {
        let mut e = Editor::new();
        run(&mut e, b"a\ra\r  \r");
        assert_eq!(e.history().count(), 1);
        for i in 0..100 {
            run(&mut e, alloc::format!("cmd {i}\r").as_bytes());
        }
        assert_eq!(e.history().count(), HISTORY);
        assert_eq!(e.history().last(), Some("cmd 99"));
    }

    #[test]
    fn control_bytes_and_other_escapes_are_swallowed() {
        let mut e = Editor::new();
        let (lines, echo) = run(&mut e, b"l\x01\x1b[1;5Ci\x1b[3~\x07st\r");
        assert_eq!(lines, ["list"]);
        assert_eq!(echo, b"list\r\n");
        let (lines, echo) = run(&mut e, b"abc\x03");
        assert_eq!(lines, [""]);
        assert!(echo.ends_with(b"^C\r\n"));
        assert_eq!(e.current(), b"");
    }

    #[test]
    fn a_long_line_is_capped() {
        let mut e = Editor::new();
        let (lines, echo) = run(&mut e, &[b'x'; 1000]);
        assert!(lines.is_empty());
        assert_eq!(e.current().len(), MAX_LINE);
        assert_eq!(echo.iter().filter(|&&b| b == 0x07).count(), 1000 - MAX_LINE);
    }
}
