"""Running untrusted, LLM-written code (DESIGN §7): a pool of warm parents (under bubblewrap
when it works) forking a fresh hardened child per evaluation."""
from llmrl.sandbox.host import Sandbox, SandboxSettings

__all__ = ["Sandbox", "SandboxSettings"]
