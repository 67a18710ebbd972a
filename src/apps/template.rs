//! Prompt templates: `{{name}}` variables, checked when a template is saved and substituted once when
//! a question is answered.
//!
//! Substitution is a single pass over the template: a value that itself contains `{{question}}` (a
//! document, a question, an input) is inserted as plain text and never expanded, so nothing a user or
//! a document writes can reach the template language. `{{` not followed by a variable name and `}}`
//! is literal text.

use std::collections::HashMap;

/// The variables every app has.
pub const BUILT_IN: [&str; 2] = ["question", "context"];

/// One piece of a template.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
}

/// Splits a template into text and variables.
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        let name = after[..end].trim();
        if super::is_variable_name(name) {
            if start > 0 {
                out.push(Piece::Text(&rest[..start]));
            }
            out.push(Piece::Variable(name));
            rest = &after[end + 2..];
        } else {
            // Not a variable: keep the braces as text and look further on.
            out.push(Piece::Text(&rest[..start + 2]));
            rest = after;
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// The variable names a template uses, in order of first use.
pub fn variables(template: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for piece in pieces(template) {
        if let Piece::Variable(name) = piece {
            if !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The variables a template may use, for messages.
pub fn known(inputs: &[&str]) -> String {
    BUILT_IN
        .iter()
        .chain(inputs.iter())
        .map(|n| format!("{{{{{n}}}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Err(name)` for the first variable that is neither built in nor one of `inputs`.
pub fn check(template: &str, inputs: &[&str]) -> Result<(), String> {
    for name in variables(template) {
        if !BUILT_IN.contains(&name.as_str()) && !inputs.contains(&name.as_str()) {
            return Err(name);
        }
    }
    Ok(())
}

/// Substitutes `values` (a variable without a value becomes empty text).
pub fn render(template: &str, values: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Variable(name) => out.push_str(values.get(name).copied().unwrap_or_default()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_variables_and_leaves_other_braces_alone() {
        assert_eq!(
            variables("Hi {{ name }}, {{question}} {{name}} {{Not A Var}} {{x"),
            vec!["name", "question"]
        );
        assert_eq!(check("{{question}} {{dept}}", &["dept"]), Ok(()));
        assert_eq!(
            check("{{question}} {{team}}", &["dept"]),
            Err("team".into())
        );
    }

    #[test]
    fn substitutes_once_so_values_are_never_expanded() {
        let values = HashMap::from([
            ("question", "what is {{context}}?"),
            ("context", "[1] secret {{question}}"),
        ]);
        let out = render("C: {{context}} Q: {{ question }} {{Not A Var}}", &values);
        assert_eq!(
            out,
            "C: [1] secret {{question}} Q: what is {{context}}? {{Not A Var}}"
        );
    }
}
