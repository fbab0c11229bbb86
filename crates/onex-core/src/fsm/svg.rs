//! Drawing a state machine as SVG for people: its states on a circle in declaration order, each
//! with the number of entities in it, and an arrow per transition labelled with its trigger.
//! Every state is one `<g class="state" data-state="…">`, every transition one
//! `<g class="transition">`, so a page or a test can find them.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::contract::{FromState, FsmContract};

/// Radius of a state's circle.
const NODE_R: f64 = 34.0;
/// Room around the drawing.
const MARGIN: f64 = 70.0;

/// `text` with the five XML special characters escaped.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The machine as an SVG document; `counts` gives the entities in each state (a state missing
/// from it has none).
pub fn to_svg(fsm: &FsmContract, counts: &BTreeMap<String, u64>) -> String {
    let n = fsm.states.len().max(1);
    // Enough circumference for every state and its label.
    let ring = (n as f64 * (NODE_R * 2.0 + 60.0) / std::f64::consts::TAU).max(90.0);
    let size = 2.0 * (ring + NODE_R + MARGIN);
    let centre = size / 2.0;
    let position = |index: usize| {
        let angle = std::f64::consts::TAU * index as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
        (centre + ring * angle.cos(), centre + ring * angle.sin())
    };
    let index: BTreeMap<&str, usize> = fsm.states.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="fsm" data-fsm="{name}" viewBox="0 0 {size:.0} {size:.0}" width="{size:.0}" height="{size:.0}" role="img" aria-label="state machine {name}"><defs><marker id="arrow-{id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>"##,
        name = escape_xml(&fsm.name),
        id = escape_xml(&fsm.name),
    );
    for t in &fsm.transitions {
        let Some(&to) = index.get(t.to.as_str()) else { continue };
        let sources: Vec<usize> = match &t.from {
            FromState::State(s) => index.get(s.as_str()).copied().into_iter().collect(),
            FromState::Any => fsm.states.iter().enumerate().filter(|(_, s)| !s.is_terminal).map(|(i, _)| i).collect(),
        };
        for from in sources {
            let path = if from == to { self_loop(position(from)) } else { arc(position(from), position(to)) };
            let _ = write!(
                out,
                r#"<g class="transition" data-from="{}" data-to="{}"><path d="{}" marker-end="url(#arrow-{})"/><text x="{:.1}" y="{:.1}">{}</text></g>"#,
                escape_xml(&fsm.states[from].name),
                escape_xml(&t.to),
                path.d,
                escape_xml(&fsm.name),
                path.label.0,
                path.label.1,
                escape_xml(&t.trigger),
            );
        }
    }
    for (i, state) in fsm.states.iter().enumerate() {
        let (x, y) = position(i);
        let count = counts.get(&state.name).copied().unwrap_or(0);
        let mut classes = String::from("state");
        if state.name == fsm.initial_state {
            classes.push_str(" initial");
        }
        if state.is_terminal {
            classes.push_str(" terminal");
        }
        let _ = write!(
            out,
            r#"<g class="{classes}" data-state="{name}" data-count="{count}"><circle cx="{x:.1}" cy="{y:.1}" r="{NODE_R}"/><text class="name" x="{x:.1}" y="{ny:.1}">{name}</text><text class="count" x="{x:.1}" y="{cy:.1}">{count}</text></g>"#,
            name = escape_xml(&state.name),
            ny = y - NODE_R - 8.0,
            cy = y + 6.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// A path's `d` attribute and where its label goes.
struct Drawn {
    d: String,
    label: (f64, f64),
}

/// A gently curved arrow between two circles' edges (curving to one side, so the two
/// directions between a pair of states do not overlap).
fn arc(from: (f64, f64), to: (f64, f64)) -> Drawn {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let length = (dx * dx + dy * dy).sqrt().max(1.0);
    let (ux, uy) = (dx / length, dy / length);
    let start = (from.0 + ux * NODE_R, from.1 + uy * NODE_R);
    let end = (to.0 - ux * NODE_R, to.1 - uy * NODE_R);
    let bend = length * 0.15;
    let control = ((start.0 + end.0) / 2.0 - uy * bend, (start.1 + end.1) / 2.0 + ux * bend);
    Drawn {
        d: format!("M{:.1},{:.1} Q{:.1},{:.1} {:.1},{:.1}", start.0, start.1, control.0, control.1, end.0, end.1),
        label: control,
    }
}

/// A loop above a state, back into itself.
fn self_loop(at: (f64, f64)) -> Drawn {
    let (x, y) = at;
    let top = y - NODE_R;
    Drawn {
        d: format!(
            "M{:.1},{top:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{top:.1}",
            x - 12.0,
            x - 40.0,
            top - 50.0,
            x + 40.0,
            top - 50.0,
            x + 12.0
        ),
        label: (x, top - 44.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::load_fsm;

    #[test]
    fn one_group_per_state_with_its_count_and_one_per_transition_edge() {
        let yaml = b"state_machine_name: door\ninitial_state: closed\nstates:\n  - state_name: closed\n  - state_name: open\n  - state_name: 'gone<&>'\n    is_terminal: true\ntransitions:\n  - {transition_name: o, from_state: closed, to_state: open, trigger: open}\n  - {transition_name: c, from_state: open, to_state: closed, trigger: close}\n  - {transition_name: k, from_state: open, to_state: open, trigger: knock}\n  - {transition_name: x, from_state: '*', to_state: 'gone<&>', trigger: remove}\n";
        let fsm = load_fsm("door.yaml", yaml).unwrap().value;
        let counts = BTreeMap::from([("open".to_owned(), 7)]);
        let svg = to_svg(&fsm, &counts);
        assert_eq!(svg.matches("<g class=\"state").count(), 3, "{svg}");
        assert!(svg.contains(r#"data-state="open" data-count="7""#), "{svg}");
        assert!(svg.contains(r#"data-state="closed" data-count="0""#), "{svg}");
        assert!(svg.contains("gone&lt;&amp;&gt;") && !svg.contains("gone<&>"), "names are escaped");
        // o, c, the self-loop k, and `*` -> gone from the two non-terminal states.
        assert_eq!(svg.matches("<g class=\"transition\"").count(), 5, "{svg}");
        assert!(svg.contains(r#"class="state initial""#));
    }
}
