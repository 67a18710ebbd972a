//! Which earlier turns of a conversation go into the prompt.
//!
//! The rule (docs/apps.md): turns are taken newest first while their tokens fit in the budget — the
//! app's `history_tokens`, further limited by what the model's context leaves after the system prompt,
//! the question and the answer's `max_tokens`. A turn that does not fit ends the history: older turns are
//! dropped whole, never cut in the middle, so the model never sees half a question.

/// One earlier exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub query: String,
    pub answer: String,
}

/// The tokens a turn costs besides its text: the chat template's role markers for two messages.
pub const TURN_OVERHEAD_TOKENS: usize = 10;

/// The newest turns of `turns` (oldest first) whose tokens fit in `budget`, oldest first.
pub fn fit(turns: &[Turn], budget: usize, count: impl Fn(&str) -> usize) -> Vec<Turn> {
    let mut used = 0usize;
    let mut kept = Vec::new();
    for turn in turns.iter().rev() {
        let cost = count(&turn.query) + count(&turn.answer) + TURN_OVERHEAD_TOKENS;
        if used + cost > budget {
            break;
        }
        used += cost;
        kept.push(turn.clone());
    }
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(q: &str, a: &str) -> Turn {
        Turn {
            query: q.into(),
            answer: a.into(),
        }
    }

    #[test]
    fn keeps_the_newest_turns_that_fit_and_drops_older_ones_whole() {
        let words = |t: &str| t.split_whitespace().count();
        let turns = vec![
            turn("one two three", "four five"),
            turn("six", "seven"),
            turn("eight nine", "ten"),
        ];
        // Newest costs 3 + 10, the next 2 + 10, the oldest 5 + 10.
        assert_eq!(fit(&turns, 100, words), turns);
        assert_eq!(fit(&turns, 25, words), turns[1..].to_vec());
        assert_eq!(fit(&turns, 24, words), turns[2..].to_vec());
        assert!(fit(&turns, 12, words).is_empty());
        // A turn that does not fit stops the history even if an older, shorter one would.
        let turns = vec![turn("a", "b"), turn(&"x ".repeat(50), "y")];
        assert!(fit(&turns, 20, words).is_empty());
    }
}
