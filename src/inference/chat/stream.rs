//! Turning generated token bytes into streamed text: bytes are buffered until they form valid UTF-8
//! (a token may end in the middle of a multibyte character), and text that could be the start of a
//! stop sequence is held back until it is known not to be one, so a stop sequence is never emitted.

/// What [`TextStream::push`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Text that can be shown now (possibly empty).
    Text(String),
    /// A stop sequence was completed: the text before it, and generation ends.
    Stop(String),
}

pub(crate) struct TextStream {
    stop: Vec<String>,
    /// Bytes not yet valid UTF-8 (an incomplete character).
    bytes: Vec<u8>,
    /// Decoded text held back (it may be the start of a stop sequence).
    pending: String,
    /// Everything emitted so far.
    emitted: String,
}

impl TextStream {
    pub(crate) fn new(stop: &[String]) -> Self {
        TextStream {
            stop: stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
            bytes: Vec::new(),
            pending: String::new(),
            emitted: String::new(),
        }
    }

    /// Adds the bytes of one token.
    pub(crate) fn push(&mut self, token_bytes: &[u8]) -> Pushed {
        self.bytes.extend_from_slice(token_bytes);
        self.take_valid_utf8();
        if let Some(at) = self.earliest_stop() {
            let before = self.pending[..at].to_string();
            self.pending.clear();
            self.bytes.clear();
            self.emitted.push_str(&before);
            return Pushed::Stop(before);
        }
        let hold = self.held_back();
        let cut = self.pending.len() - hold;
        let out: String = self.pending.drain(..cut).collect();
        self.emitted.push_str(&out);
        Pushed::Text(out)
    }

    /// At the end of generation (not by a stop sequence): whatever is still held back, invalid
    /// trailing bytes replaced.
    pub(crate) fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.pending);
        if !self.bytes.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.bytes));
            self.bytes.clear();
        }
        self.emitted.push_str(&out);
        out
    }

    /// All text emitted so far.
    pub(crate) fn emitted(&self) -> &str {
        &self.emitted
    }

    /// Moves the valid UTF-8 prefix of `bytes` into `pending` (invalid sequences become U+FFFD;
    /// an incomplete character at the end stays buffered).
    fn take_valid_utf8(&mut self) {
        loop {
            match std::str::from_utf8(&self.bytes) {
                Ok(s) => {
                    self.pending.push_str(s);
                    self.bytes.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if let Ok(s) = std::str::from_utf8(&self.bytes[..valid]) {
                        self.pending.push_str(s);
                    }
                    match e.error_len() {
                        // Incomplete: wait for the next token.
                        None => {
                            self.bytes.drain(..valid);
                            return;
                        }
                        Some(bad) => {
                            self.pending.push('\u{FFFD}');
                            self.bytes.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Byte position in `pending` of the first complete stop sequence.
    fn earliest_stop(&self) -> Option<usize> {
        self.stop
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of a stop sequence.
    fn held_back(&self) -> usize {
        let mut hold = 0;
        for s in &self.stop {
            let max = s.len().min(self.pending.len());
            for k in (hold + 1..=max).rev() {
                let start = self.pending.len() - k;
                if self.pending.is_char_boundary(start)
                    && s.is_char_boundary(k)
                    && self.pending.as_bytes()[start..] == s.as_bytes()[..k]
                {
                    hold = k;
                    break;
                }
            }
        }
        hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_characters_split_across_tokens() {
        let mut s = TextStream::new(&[]);
        let e = "é".as_bytes();
        assert_eq!(s.push(b"caf"), Pushed::Text("caf".into()));
        assert_eq!(s.push(&e[..1]), Pushed::Text(String::new()));
        assert_eq!(s.push(&e[1..]), Pushed::Text("é".into()));
        assert_eq!(s.push(&[0xF0, 0x9F]), Pushed::Text(String::new()));
        assert_eq!(s.finish(), "\u{FFFD}");
        assert_eq!(s.emitted(), "café\u{FFFD}");
    }

    #[test]
    fn stop_sequences_are_held_back_and_never_emitted() {
        let mut s = TextStream::new(&["\n\nUser:".to_string(), String::new()]);
        assert_eq!(s.push(b"Hello"), Pushed::Text("Hello".into()));
        assert_eq!(s.push(b".\n"), Pushed::Text(".".into()));
        assert_eq!(s.push(b"\nUs"), Pushed::Text(String::new()));
        assert_eq!(s.push(b"er: x"), Pushed::Stop(String::new()));
        assert_eq!(s.emitted(), "Hello.");

        // A partial match that turns out not to be one is released.
        let mut s = TextStream::new(&["END".to_string()]);
        assert_eq!(s.push(b"the E"), Pushed::Text("the ".into()));
        assert_eq!(s.push(b"ND"), Pushed::Stop(String::new()));
        let mut s = TextStream::new(&["END".to_string()]);
        assert_eq!(s.push(b"the EN"), Pushed::Text("the ".into()));
        assert_eq!(s.push(b"d"), Pushed::Text("ENd".into()));
        assert_eq!(s.push(b" xEND y"), Pushed::Stop(" x".into()));
        assert_eq!(s.emitted(), "the ENd x");
    }
}
