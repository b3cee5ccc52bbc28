"""ULTRA and its baselines: narration, the strict reading of replies, the guide (overrides and
shaping, checked against an unguided twin), and whole runs through run.py with a scripted LLM
over real HTTP."""
from __future__ import annotations

import json
import re
import signal
import time

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv

from llmrl.envs.description import load_description
from llmrl.errors import ConfigError
from llmrl.llm.scripted_server import Reply, ScriptedServer
from llmrl.tracking import read_curve
from tests.conftest import popen_cli, run_cli
from tests.test_envs import load_spec
from ultra.guide import CriticalStateGuide, GuidedMlpPolicy
from llmrl.refine.harness import params_digest
from ultra.narration import FieldNarrator, PongNarrator
from ultra.prompts import ReplyError, parse_reply
from ultra.table import CriticalState, CriticalTable, payment
from ultra.trajectories import Episode, collect, tiles, windows

import gymnasium as gym

HOPPER_ACTION = [0.25, -0.5, 0.75]
LINE = re.compile(r"^(\d+): ", re.MULTILINE)


class Identifier:
    """Marks the first two listed steps of each window, with a fixed action and rewards (for the
    suggested action and for the one taken). `broken`: how many first replies to each window
    are unusable (0, 1 = repaired, 2 = skipped)."""

    def __init__(self, broken: int = 0, action=HOPPER_ACTION, reward: float = 0.5, reward_taken: float = -0.25):
        self.broken, self.action, self.reward, self.reward_taken = broken, action, reward, reward_taken
        self.identify_prompts: list[str] = []
        self.repairs = 0
        self.sent: dict[str, list[dict]] = {}

    def __call__(self, request, index):
        text = request["messages"][0]["content"]
        is_repair = len(request["messages"]) > 1
        if is_repair:
            self.repairs += 1
        else:
            self.identify_prompts.append(text)
        if (not is_repair and self.broken >= 1) or (is_repair and self.broken >= 2):
            return Reply(content="The agent falls over. {critical_steps: [step 3]}")
        steps = [int(s) for s in LINE.findall(text)]
        items = [{"step": s, "reason": "it leans too far", "action": self.action, "reward_action": self.reward,
                  "reward_taken": self.reward_taken} for s in steps[:2]]
        self.sent[text] = items
        return Reply(content="Step by step: the torso tilts.\n```json\n" + json.dumps({"critical_steps": items}) + "\n```")


def ultra_args(method, run_dir, *extra, server=None, tmp_path=None, env="mujoco_hopper"):
    args = [f"method={method}", f"env={env}", "method.pretrain_steps=1024", "method.refine_steps=2048", "method.eval_every=1024",
            "method.num_trajectories=2", "method.window_steps=20", "method.windows_per_episode=2", "env.eval_episodes=2",
            "logger.progress=false", f"hydra.run.dir={run_dir}"]
    if server is not None:
        args += ["llm=vllm", f"llm.api_base={server.api_base}", "llm.model=openai/scripted", f"llm.cache_dir={tmp_path / 'cache'}"]
    return [*args, *extra]


# ---- narration ------------------------------------------------------------------------------
def test_hopper_narration_holds_the_true_values():
    """Every narrated state of an episode, read back, equals the observation a replay of the
    same actions produces (to the 4 significant digits the narration prints)."""
    spec = load_spec("mujoco_hopper")
    desc = load_description("mujoco_hopper")
    narrator = FieldNarrator(desc, gym.spaces.Box(-1, 1, (3,)))
    rng = np.random.default_rng(0)
    ep = collect(spec, None, lambda o: rng.uniform(-1, 1, 3).astype(np.float32), 1, 3, narrator)[0]
    assert ep.length == len(ep.states) == len(ep.rewards) > 5
    env = spec.make(seed=3)
    obs, _ = env.reset(seed=3)
    names = ["torso_height", "torso_angle", "thigh_angle", "leg_angle", "foot_angle", "torso_x_velocity",
             "torso_z_velocity", "torso_angular_velocity", "thigh_angular_velocity", "leg_angular_velocity",
             "foot_angular_velocity"]
    for t in range(ep.length):
        values = dict(kv.split("=") for kv in ep.states[t].split(", "))
        assert list(values) == names
        for i, name in enumerate(names):
            assert float(values[name]) == pytest.approx(obs[i], rel=1e-3, abs=1e-9), (t, name)
        assert np.array_equal(ep.keys[t], np.asarray(obs, dtype=np.float64))
        obs, reward, *_ = env.step(ep.actions[t])
        assert reward == ep.rewards[t]
    env.close()


def test_pong_narration_reads_the_ram():
    spec = load_spec("atari_pong")
    env = spec.make(seed=0)
    narrator = PongNarrator(None, env.action_space)
    obs, info = env.reset(seed=0)
    for _ in range(60):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
    ram = env.unwrapped.ale.getRAM()
    env.close()
    text = narrator.describe_state(obs, info)
    assert f"ball at x={ram[49]} y={ram[54]}" in text
    assert f"your paddle y={ram[51]}; opponent paddle y={ram[50]}" in text
    assert f"score you {ram[14]} - {ram[13]} opponent" in text
    assert f"dx={int(ram[49]) - int(info['prev_ram'][49])}" in text
    assert narrator.key(obs, info)[:4].tolist() == [ram[49], ram[54], ram[51], ram[50]]
    assert narrator.describe_action(2) == "2 (RIGHT (up))"


def test_windows_split_long_episodes_and_keep_the_end():
    assert windows(30, 40, 3) == [range(0, 30)]
    w = windows(1000, 40, 3)
    assert len(w) == 3 and w[0] == range(0, 40) and w[-1] == range(960, 1000)
    assert windows(1000, 40, 1) == [range(960, 1000)]  # a single window is the end, where a failing episode fails


def test_tiled_coverage_shows_whole_episodes_within_the_token_budget():
    # 1000 steps of 100 characters = 40000 tokens (2.5 characters each): within 40000 every step, in 25 windows of 40
    w, stride = tiles([100] * 1000, 40, 40000)
    assert stride == 1 and [t for r in w for t in r] == list(range(1000)) and len(w) == 25
    # within 8000: every 5th step, the last one included, spread over the whole episode
    w, stride = tiles([100] * 1000, 40, 8000)
    shown = [t for r in w for t in r]
    assert stride == 5 and shown == list(range(4, 1000, 5)) and sum(100 for _ in shown) / 2.5 <= 8000
    assert all(len(r) == 40 for r in w)


# ---- strict replies ---------------------------------------------------------------------------
def test_parse_reply_checks_steps_actions_and_rewards():
    box = gym.spaces.Box(-1, 1, (3,))
    ok = '```json\n{"critical_steps": [{"step": 5, "reason": "r", "action": [0.1, 0.2, -1], "reward_action": 0.5, "reward_taken": -0.5}]}\n```'
    assert parse_reply(ok, range(0, 10), box, True, True, (-1, 1), 3) == [
        {"step": 5, "reason": "r", "action": [0.1, 0.2, -1.0], "reward_taken": -0.5, "reward_action": 0.5}]
    # ULTRA-R: only the taken action's reward is asked for
    assert parse_reply('{"critical_steps": [{"step": 5, "reward_taken": 0.25}]}', range(0, 10), box, False, True, (-1, 1), 3) == [
        {"step": 5, "reason": "", "reward_taken": 0.25}]
    r = '"reward_action": 0, "reward_taken": 0'
    bad = {
        '{"critical_steps": [{"step": 50, "action": [0,0,0], %s}]}' % r: "must be one of the listed steps",
        '{"critical_steps": [{"step": 5, "action": [0,0,2], %s}]}' % r: "out of bounds",
        '{"critical_steps": [{"step": 5, "action": [0,0], %s}]}' % r: "a list of 3 numbers",
        '{"critical_steps": [{"step": 5, "action": [0,0,0], "reward_action": 7, "reward_taken": 0}]}': "reward_action=7 must be a number from -1 to 1",
        '{"critical_steps": [{"step": 5, "action": [0,0,0], "reward_action": 0}]}': "reward_taken=None must be",
        '{"critical_steps": [{"step": 5, "action": [0,0,"x"], %s}]}' % r: "a list of 3 numbers",
        '{"critical_steps": [{"step": 4, "action": [0,0,0], %s}]}' % r: "steps 0 to 9, every 3 steps",
        "no json at all": "no JSON object",
        '{"critical_steps": [1,}': "does not parse",
    }
    for text, message in bad.items():
        with pytest.raises(ReplyError, match=re.escape(message)):
            parse_reply(text, range(0, 10) if "every" not in message else range(0, 10, 3), box, True, True, (-1, 1), 3)
    disc = gym.spaces.Discrete(6)
    with pytest.raises(ReplyError, match="integer from 0 to 5"):
        parse_reply('{"critical_steps": [{"step": 1, "action": 6}]}', range(0, 10), disc, True, False, (-1, 1), 3)


# ---- the guide --------------------------------------------------------------------------------
def _hopper_venv(seed: int):
    def make(i):
        return lambda: gym.make("Hopper-v5")
    venv = DummyVecEnv([make(i) for i in range(2)])
    venv.seed(seed)
    return venv


def test_guide_takes_the_table_action_and_pays_the_suggested_actions_reward_with_its_sign():
    """ULTRA-RA: at a match the table's action is executed and the step earns reward_weight x the
    LLM's reward *for that action* (positive here), never its reward for the agent's old action."""
    weight, for_suggested, for_taken = 2.5, 0.7, -0.9
    guided = CriticalStateGuide(_hopper_venv(7), lambda o, i: np.asarray(o, dtype=np.float64), weight, True, True)
    twin = _hopper_venv(7)
    obs = guided.reset()
    assert np.array_equal(obs, twin.reset())
    # one entry exactly at sub-env 0's first state; sub-env 1 starts elsewhere
    table = CriticalTable([CriticalState(key=obs[0].astype(np.float64).tolist(), action=HOPPER_ACTION, reward_action=for_suggested,
                                         taken_action=[-0.9, 0.9, -0.9], reward_taken=for_taken)],
                          scale=[1.0] * obs.shape[1], radius=1e-9)
    guided.set_table(table)  # applies to the live states at once
    assert guided.matches.tolist() == [0, -1]
    model = PPO(GuidedMlpPolicy, guided, seed=0, n_steps=64, batch_size=64, device="cpu")
    model.policy.guide = guided
    obs_t = th.as_tensor(obs)
    with th.no_grad():
        th.manual_seed(1)
        actions, _, logp = model.policy(obs_t)
        th.manual_seed(1)
        plain, _, plain_logp = ActorCriticPolicy.forward(model.policy, obs_t)  # the unguided policy
        expected = model.policy.get_distribution(obs_t).log_prob(th.as_tensor([HOPPER_ACTION], dtype=th.float32).repeat(2, 1))[0]
    assert np.allclose(actions[0].numpy(), HOPPER_ACTION)                 # overridden at the match
    assert th.equal(actions[1], plain[1]) and th.equal(logp[1], plain_logp[1])  # nothing changes elsewhere
    assert th.allclose(logp[0], expected)                                  # the buffer gets the executed action's log-prob
    a = actions.numpy()
    _, r_guided, _, infos = guided.step(a)
    _, r_plain, *_ = twin.step(a)
    shaped = r_guided[0] - r_plain[0]
    assert shaped > 0 and shaped == pytest.approx(weight * for_suggested, abs=1e-5)
    assert infos[0]["ultra_paid_for"] == "suggested" and r_guided[1] == r_plain[1]
    assert (guided.overrides, guided.shaped_steps, guided.matched_states, guided.acted_states) == (1, 1, 1, 2)


def test_llm_rewards_are_paid_only_to_the_action_they_were_given_for():
    """ULTRA-R: the reward for the agent's identified action is paid when that action (within the
    tolerance, in half-range units) is executed again, and not for another action in the state."""
    space = gym.spaces.Box(-1, 1, (3,))
    entry = CriticalState(key=[0.0], taken_action=[0.5, 0.5, 0.5], reward_taken=-0.6)
    assert payment(entry, [0.5, 0.55, 0.45], space, 0.1) == (-0.6, "taken")
    assert payment(entry, [-0.5, 0.5, 0.5], space, 0.1) is None          # a different action earns nothing
    ra = CriticalState(key=[0.0], action=[0.0, 0.0, 0.0], reward_action=0.8, taken_action=[0.5, 0.5, 0.5], reward_taken=-0.6)
    assert payment(ra, [0.0, 0.02, 0.0], space, 0.1) == (0.8, "suggested")
    disc = gym.spaces.Discrete(6)
    pong = CriticalState(key=[0.0], action=3, reward_action=0.9, taken_action=2, reward_taken=-0.9)
    assert [payment(pong, a, disc, 0.1) for a in (3, 2, 0)] == [(0.9, "suggested"), (-0.9, "taken"), None]
    # through the guide: an ULTRA-R table, the agent acting away from the identified action
    guided = CriticalStateGuide(_hopper_venv(4), lambda o, i: np.asarray(o, dtype=np.float64), 1.0, False, True)
    obs = guided.reset()
    far = [-0.5, -0.5, -0.5]
    guided.set_table(CriticalTable([CriticalState(key=obs[i].astype(np.float64).tolist(), taken_action=[0.5, 0.5, 0.5],
                                                  reward_taken=-0.6) for i in range(2)], scale=[1.0] * 11, radius=1e-9))
    twin = _hopper_venv(4)
    twin.reset()
    actions = np.array([[0.5, 0.5, 0.5], far], dtype=np.float32)
    _, r, _, infos = guided.step(actions)
    _, r_plain, *_ = twin.step(actions)
    assert r[0] - r_plain[0] == pytest.approx(-0.6, abs=1e-5) and r[1] == r_plain[1] and "ultra_bonus" not in infos[1]


def test_table_calibration_hits_the_target_match_rate_on_other_episodes():
    """Four episodes as random walks (consecutive states close, as in any env): the radius is set
    on distances to entries of other episodes, so an entry's temporal neighbours cannot fill the
    quota (which would leave a fresh episode matching far less than the target)."""
    rng = np.random.default_rng(0)
    walks = np.cumsum(rng.normal(scale=0.1, size=(4, 200, 3)), axis=1) + rng.normal(size=(4, 1, 3))
    keys = walks[:4].reshape(-1, 3)
    episode = np.repeat(np.arange(4), 200)
    entries = [CriticalState(key=walks[e, t].tolist(), episode=e, step=t) for e in range(4) for t in (50, 150)]
    table = CriticalTable(entries, CriticalTable.spread(keys), 0.0)
    for rate in (0.02, 0.1):
        table.calibrate(keys, rate, episode)
        held_out = table.held_out_distances(keys, episode)
        assert table.meta["identification_match_rate"] == pytest.approx(rate, abs=1 / 800)
        assert np.mean(held_out <= table.radius) == table.meta["identification_match_rate"]
        # all states would give a much smaller radius: each entry's own neighbours lie within it
        _, every = table.nearest(keys)
        assert np.quantile(every, rate) < 0.5 * table.radius
    one = CriticalTable(entries[:2], CriticalTable.spread(keys[:200]), 0.0)
    with pytest.raises(ConfigError, match="num_trajectories >= 2"):
        one.calibrate(keys[:200], 0.05, episode[:200])


def test_guided_rollouts_store_the_executed_actions():
    """Through SB3's own rollout collection: with every state matching a one-entry table, every
    action in the rollout buffer is the table's."""
    guide = CriticalStateGuide(_hopper_venv(3), lambda o, i: np.asarray(o, dtype=np.float64), 1.0, True, False)
    table = CriticalTable([CriticalState(key=[0.0] * 11, action=HOPPER_ACTION, taken_action=[0.0] * 3)], scale=[1.0] * 11, radius=1e9)
    guide.set_table(table)
    model = PPO(GuidedMlpPolicy, guide, seed=0, n_steps=32, batch_size=64, n_epochs=1, device="cpu")
    model.policy.guide = guide
    model.learn(64)
    assert np.allclose(model.rollout_buffer.actions, np.array(HOPPER_ACTION, dtype=np.float32))
    assert guide.overrides == 64 and guide.shaped_steps == 0


# ---- whole runs -------------------------------------------------------------------------------
def _summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_ultra_ra_end_to_end_with_the_scripted_llm(tmp_path):
    run_dir = tmp_path / "run"
    script = Identifier()
    with ScriptedServer(responder=script) as server:
        run_cli(*ultra_args("ultra_ra", run_dir, "method.match_rate=null", "method.match_radius=1e9", "method.reward_weight=0.5",
                            server=server, tmp_path=tmp_path), check=True)
        seed0 = [r["json"] for r in server.completions]
        # seed 1 of the same command, same cache: its identification is a draw of its own, asked again
        server.responder = Identifier()
        run_cli(*ultra_args("ultra_ra", tmp_path / "seed1", "seed=1", "method.match_rate=null", "method.match_radius=1e9", "method.reward_weight=0.5",
                            server=server, tmp_path=tmp_path), check=True)
        seed1 = [r["json"] for r in server.completions[len(seed0):]]
    assert seed1 and {r["seed"] for r in seed0}.isdisjoint({r["seed"] for r in seed1})
    assert {r["messages"][0]["content"] for r in seed0}.isdisjoint({r["messages"][0]["content"] for r in seed1})
    s = _summary(run_dir)
    assert s["status"] == "done" and s["total_env_steps"] == 3072
    # the critical states in the table are exactly the ones the replies named, with their actions and rewards
    table = json.loads((run_dir / "refine" / "identify_01" / "table.json").read_text())
    replied = [(i["step"], i["action"], i["reward_action"], i["reward_taken"]) for items in script.sent.values() for i in items]
    assert sorted((e["step"], e["action"], e["reward_action"], e["reward_taken"]) for e in table["entries"]) == sorted(replied)
    assert len(script.identify_prompts) == s["ultra"]["prompts"] >= 2
    # the prompts hold the narrated windows the artifacts recorded
    recorded = sorted(p.read_text() for p in (run_dir / "refine" / "identify_01").glob("window_*.md"))
    assert recorded == sorted(script.identify_prompts)
    assert "torso_height=" in recorded[0] and '"critical_steps"' in recorded[0]
    assert "A worked example of the case analysis" in recorded[0] and "two-legged walker" in recorded[0]  # mujoco family
    assert '"reward_taken"' in recorded[0] and '"reward_action"' in recorded[0]
    # every refinement step matched (radius 1e9): each was overridden and paid the suggested action's reward
    u = s["ultra"]
    assert u["overrides"] == u["shaped_steps"] == u["matched_states"] == u["acted_states"] == 2048 - u["identification_steps"]
    assert u["match_rate"] == 1.0 and u["match_radius_source"] == "config" and u["case_example"] is True
    curve = read_curve(run_dir)
    assert [p["phase"] for p in curve] == [0, 0, 1, 1] and curve[-1]["match_rate"] == 1.0
    rates = [json.loads(line)["ultra/match_rate"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
             if "ultra/match_rate" in line]
    assert rates and all(r == 1.0 for r in rates)  # one per PPO update
    assert curve[-1]["llm_calls"] == s["llm_calls"] == len(script.identify_prompts)
    # refinement started from the sub-optimal agent's weights
    pre = PPO.load(str(run_dir / "refine" / "pretrained" / "model.zip"), device="cpu")
    assert s["refine_start_params_sha256"] == params_digest(pre.policy) == s["pretrained_params_sha256"]
    fresh = PPO("MlpPolicy", "Hopper-v5", seed=0, device="cpu")
    assert params_digest(fresh.policy) != s["pretrained_params_sha256"]


@pytest.mark.parametrize("broken,repaired,invalid", [(1, "all", 0), (2, 0, "all")])
def test_invalid_replies_are_repaired_or_counted(tmp_path, broken, repaired, invalid):
    run_dir = tmp_path / "run"
    script = Identifier(broken=broken)
    with ScriptedServer(responder=script) as server:
        run_cli(*ultra_args("ultra_a", run_dir, server=server, tmp_path=tmp_path), check=True)
    s = _summary(run_dir)
    n = len(script.identify_prompts)
    assert s["status"] == "done" and script.repairs == n
    assert s["ultra"]["repaired"] == (n if repaired == "all" else 0)
    assert s["ultra"]["invalid_replies"] == (n if invalid == "all" else 0)
    table = json.loads((run_dir / "refine" / "identify_01" / "table.json").read_text())
    assert (len(table["entries"]) > 0) == (invalid == 0)
    if invalid:
        assert "after repair" in s["identification_problems"][0]


@pytest.mark.parametrize("method", ["ultra_a", "ultra_r", "ultra_random_a", "ultra_random_r", "ppo_finetune", "ultra_none"])
def test_every_variant_runs_end_to_end(tmp_path, method):
    run_dir = tmp_path / "run"
    llm = method in ("ultra_a", "ultra_r")
    with ScriptedServer(responder=Identifier()) as server:
        # a tolerance of 10 half-ranges: every executed action counts as the identified one, so R always pays
        run_cli(*ultra_args(method, run_dir, "method.match_rate=null", "method.match_radius=1e9", "method.action_tolerance=10",
                            server=server if llm else None, tmp_path=tmp_path), check=True)
    s = _summary(run_dir)
    curve = read_curve(run_dir)
    assert s["status"] == "done"
    if method == "ultra_none":
        assert s["total_env_steps"] == 1024 and all(p["phase"] == 0 for p in curve)
        return
    assert s["total_env_steps"] == 3072 and curve[-1]["phase"] == 1
    u = s["ultra"]
    if method == "ppo_finetune":
        assert u["overrides"] == u["shaped_steps"] == u["identifications"] == 0
    elif method in ("ultra_a", "ultra_random_a"):
        assert u["overrides"] == u["acted_states"] > 0 and u["shaped_steps"] == 0
    else:
        assert u["shaped_steps"] == u["acted_states"] > 0 and u["overrides"] == 0
    if method.startswith("ultra_random"):
        assert u["prompts"] == 0 and s["llm_calls"] is None
        table = json.loads((run_dir / "refine" / "identify_01" / "table.json").read_text())
        for e in table["entries"]:  # random draws of exactly what the LLM variant would be asked for
            assert (e["action"] is not None, e["reward_taken"] is not None) == (method == "ultra_random_a", method == "ultra_random_r")
            assert e["reward_action"] is None and e["taken_action"] is not None


@pytest.mark.parametrize("mode,rates", [("continue", [7.5e-4, 5e-4, 2.5e-4, 0.0]), ("restart", [5e-4, 0.0, 5e-4, 0.0])])
def test_refinement_continues_the_learning_rate_schedule(tmp_path, mode, rates):
    """A linearly decaying learning rate (as Atari's): with schedule=continue refinement goes on
    from where pre-training left it (one schedule over both phases), with restart it starts over."""
    run_dir = tmp_path / "run"
    run_cli(*ultra_args("ppo_finetune", run_dir, "method.refine_steps=1024", f"method.schedule={mode}",
                        "+method.hparams.learning_rate=lin_0.001", "+method.hparams.n_steps=512"), check=True)
    seen = [json.loads(line)["train/learning_rate"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if "train/learning_rate" in line]
    assert seen == pytest.approx(rates, abs=1e-9)  # two PPO updates per phase
    sched = _summary(run_dir)["schedule"]
    assert sched["mode"] == mode and sched["learning_rate_at_refine_start"] == pytest.approx(rates[1] if mode == "continue" else 1e-3)


def test_identification_steps_keep_every_curve_point_and_episodes_can_start_from_critical_states(tmp_path):
    """Identification rollouts spend several eval intervals under one policy: every interval still
    gets its point, at its boundary. With reset_to_critical, training episodes start from the
    identified states (restored)."""
    run_dir = tmp_path / "run"
    run_cli(*ultra_args("ultra_random", run_dir, "method.num_trajectories=8", "method.eval_every=128",
                        "method.refine_steps=1024", "method.reset_to_critical=0.5", "method.match_rate=0.05"), check=True)
    s = _summary(run_dir)
    steps = [p["env_steps"] for p in read_curve(run_dir)]
    assert s["ultra"]["identification_steps"] > 2 * 128
    assert set(range(0, 2048 + 1, 128)) <= set(steps)  # Hopper has one env: every boundary exactly
    assert s["ultra"]["critical_starts"] > 0 and s["ultra"]["match_radius_source"] == "calibrated"


def test_pretrained_path_is_refined_from_its_weights(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    run_cli(*ultra_args("ultra_none", first), check=True)
    run_cli(*ultra_args("ppo_finetune", second, f"method.pretrained_path={first / 'refine' / 'pretrained'}"), check=True)
    a, b = _summary(first), _summary(second)
    assert b["refine_start_params_sha256"] == a["pretrained_params_sha256"]
    # the loaded agent is evaluated first, at step 0, on the same eval seeds: the same score
    assert read_curve(second)[0]["env_steps"] == 0
    assert read_curve(second)[0]["return_mean"] == read_curve(first)[-1]["return_mean"]
    assert b["total_env_steps"] == 2048


def test_killed_run_resumes_with_its_table_and_one_clean_curve(tmp_path):
    run_dir = tmp_path / "run"
    script = Identifier()
    with ScriptedServer(responder=script) as server:
        args = ultra_args("ultra_ra", run_dir, "method.refine_steps=8192", "method.eval_every=512", "method.match_rate=null", "method.match_radius=1e9",
                          server=server, tmp_path=tmp_path)
        proc = popen_cli(*args)
        state = run_dir / "checkpoint" / "state.json"
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                st = json.loads(state.read_text())
                if st.get("phase") == "refine" and st["env_steps"] >= st["refine_start"] + 1024:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        else:
            proc.kill()
            pytest.fail("no refinement checkpoint within 300 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        prompts_before = len(script.identify_prompts)
        assert not (run_dir / "summary.json").exists()
        run_cli(*args, "resume=true", check=True)
    s = _summary(run_dir)
    curve = read_curve(run_dir)
    steps = [p["env_steps"] for p in curve]
    assert s["status"] == "done" and steps == sorted(set(steps)) and steps[-1] == 1024 + 8192
    assert len(script.identify_prompts) == prompts_before  # the table came back from the checkpoint
    assert s["ultra"]["identifications"] == 1 and s["ultra"]["overrides"] > 0


def _with_threshold(spec, threshold: float):
    spec.wrappers[1]["threshold"] = threshold
    return spec


def test_sparse_variants_pay_only_past_the_threshold():
    dense = load_spec("mujoco_hopper")
    sparse = load_spec("mujoco_hopper_sparse")
    low = _with_threshold(load_spec("mujoco_hopper_sparse"), -10)
    rng = np.random.default_rng(1)
    envs = [s.make(seed=5) for s in (dense, sparse, low)]
    for e in envs:
        e.reset(seed=5)
    for _ in range(30):
        a = rng.uniform(-1, 1, 3).astype(np.float32)
        (_, rd, *_), (_, rs, _, _, info), (_, rl, *_) = (e.step(a) for e in envs)
        x = info["qpos"][0]
        assert rs == (rd if x > 0.6 else 0.0) and rl == rd and info["dense_reward"] == rd
    for e in envs:
        e.close()


def test_bad_ultra_config_gets_one_clear_line(tmp_path):
    proc = run_cli(*ultra_args("ultra_random", tmp_path / "r", "method.match_radius=-1"))
    assert proc.returncode == 2 and "method.match_radius=-1" in proc.stderr
    proc = run_cli(*ultra_args("ppo_finetune", tmp_path / "r2", f"method.pretrained_path={tmp_path}"))
    assert proc.returncode == 2 and "no model.zip there" in proc.stderr


def test_pong_ultra_ra_with_ram_narration(tmp_path):
    """The paper's sparse-reward case, on a tiny budget: Pong narrated from RAM, Discrete actions
    from the LLM, CNN policy guided."""
    run_dir = tmp_path / "run"
    script = Identifier(action=2, reward=-1.0, reward_taken=0.5)
    with ScriptedServer(responder=script) as server:
        run_cli(*ultra_args("ultra_ra", run_dir, "env.horizon=200", "env.eval_episodes=1", "method.pretrain_steps=256",
                            "method.coverage=tiled", "method.tokens_per_episode=100000",
                            "method.refine_steps=512", "method.eval_every=256", "method.num_trajectories=1",
                            "method.match_rate=null", "method.match_radius=1e9", "+method.hparams.n_envs=2", "+method.hparams.n_steps=64",
                            "+method.hparams.batch_size=64", "+method.hparams.n_epochs=1",
                            server=server, tmp_path=tmp_path, env="atari_pong"), check=True)
    s = _summary(run_dir)
    assert s["status"] == "done" and s["total_env_steps"] == 768
    assert all("ball at x=" in p and "| action " in p and "score you" in p for p in script.identify_prompts)
    # coverage=tiled: the windows together narrate every step of the episode, once
    shown = sorted(int(t) for p in script.identify_prompts for t in LINE.findall(p))
    assert shown == list(range(200)) and len(script.identify_prompts) == 10
    assert "part 10 of 10" in "".join(script.identify_prompts) and "A paddle game" in script.identify_prompts[0]
    table = json.loads((run_dir / "refine" / "identify_01" / "table.json").read_text())
    assert table["entries"] and all(e["action"] == 2 and e["reward_action"] == -1.0 and len(e["key"]) == 6 for e in table["entries"])
    assert s["ultra"]["overrides"] == s["ultra"]["shaped_steps"] == 512 - s["ultra"]["identification_steps"]
