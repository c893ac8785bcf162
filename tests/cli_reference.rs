//! docs/cli.md's reference is the commands' own help, and docs/codes.md the code registry:
//! both generated, and held equal here (`UPDATE_DOCS=1` rewrites them).

mod common;

use common::root;

const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE -->\n";
const END: &str = "<!-- END GENERATED REFERENCE -->";

/// Every command's `--help`, as the binary prints it (environment values hidden, so the text
/// does not depend on the shell it is generated in).
fn reference() -> String {
    let mut cmd = plx_store_webhook::cli::Cli::command_for_tests()
        .mut_args(|a| a.hide_env_values(true))
        .term_width(0);
    cmd.build();
    let mut out = format!(
        "### plx-store-webhook\n\n```text\n{}```\n",
        cmd.render_long_help()
    );
    for sub in cmd.get_subcommands_mut() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let name = sub.get_name().to_string();
        let mut sub = sub.clone().mut_args(|a| a.hide_env_values(true));
        out.push_str(&format!(
            "\n### plx-store-webhook {name}\n\n```text\n{}```\n",
            sub.render_long_help().to_string().trim_end().to_string() + "\n"
        ));
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn check(path: &str, want: &str) {
    let file = root().join(path);
    let have = std::fs::read_to_string(&file).unwrap_or_default();
    if std::env::var("UPDATE_DOCS").is_ok() {
        std::fs::write(&file, want).unwrap();
        return;
    }
    assert!(
        have == want,
        "{path} is out of date: run UPDATE_DOCS=1 cargo test --test cli_reference"
    );
}

#[test]
fn docs_cli_reference_is_the_commands_own_help() {
    let have = std::fs::read_to_string(root().join("docs/cli.md")).unwrap();
    let (head, rest) = have.split_once(BEGIN).expect("the BEGIN marker");
    let (_, tail) = rest.split_once(END).expect("the END marker");
    check(
        "docs/cli.md",
        &format!("{head}{BEGIN}{}{END}{tail}", reference()),
    );
}

#[test]
fn docs_codes_is_the_registry() {
    check("docs/codes.md", &plx_store_webhook::codes::markdown());
}
