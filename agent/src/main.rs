//! `tallyman`: the edge agent's single binary. Everything lives in the library.

fn main() -> std::process::ExitCode {
    tallyman_agent::main()
}
