"""Per-tool time limits: a slow backend gives an error observation and the episode goes on."""

import threading
import time

import pytest

from knowgen.envs.observations import TOOL_WORKERS
from knowgen.envs.protocol import format_tool_call
from knowgen.reference_policies.common import parse_images

DELAY = 1.5
LIMIT = 0.2


class Slow:
    """Wraps a real backend; every method sleeps first and records the thread it ran in.

    It is not an in-memory lookup any more, so it must not claim ``in_process``.
    """

    in_process = False

    def __init__(self, inner, delay=DELAY):
        self.inner, self.delay, self.threads = inner, delay, []

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def slow(*args, **kwargs):
            self.threads.append(threading.current_thread().name)
            time.sleep(self.delay)
            return method(*args, **kwargs)

        return slow


def _calls(url):
    return {
        "search": format_tool_call("search", {"queries": ["capital Lima"]}),
        "image_search": format_tool_call("image_search", {"query": "Flag of Peru"}),
        "browse": format_tool_call("browse", {"url": url, "query": "capital"}),
        "fetch_image": format_tool_call("fetch_image", {"url": url}),
    }


@pytest.mark.parametrize("tool", ["search", "image_search", "browse", "fetch_image"])
def test_a_slow_tool_times_out_and_the_episode_continues(make_env, backends, tool):
    slow = {"text_search": Slow(backends["text_search"]),
            "image_search": Slow(backends["image_search"]),
            "browser": Slow(backends["browser"])}
    env = make_env(tool_timeout_s=LIMIT, **slow)
    env.reset(seed=0)
    started = time.perf_counter()
    url = "https://media.world.invalid/flag-pe.png"
    obs, reward, term, trunc, info = env.step(_calls(url)[tool])
    elapsed = time.perf_counter() - started
    assert elapsed < DELAY  # the step did not wait for the backend
    assert f"Error from {tool}: tool {tool} timed out after {LIMIT:g}s" in obs
    assert obs.startswith("<tool_response>") and (reward, term, trunc) == (0.0, False, False)
    assert info["last_action"]["ok"] is False and "timed out" in info["last_action"]["error"]
    assert info["tool_calls_used"] == 1 and info["image_ids"] == []
    env.close()


def test_fast_calls_pass_and_the_pool_stays_small(make_env, backends):
    list(backends["image_search"].search_images("Flag of Peru", top_k=1))  # load its index now
    slow_search = Slow(backends["text_search"])
    env = make_env(tool_timeout_s=LIMIT, text_search=slow_search, max_tool_calls=10, max_turns=12)
    env.reset(seed=0)
    for _ in range(2):
        obs, *_ = env.step(_calls("")["search"])
        assert "timed out" in obs
    # two workers are still busy with the abandoned calls; a free one serves the next call
    obs, *_, info = env.step(_calls("")["image_search"])
    assert info["last_action"]["ok"] is True and parse_images(obs)
    for _ in range(4):
        obs, *_ = env.step(_calls("")["search"])
        assert "timed out" in obs
    pool_threads = set(slow_search.threads)
    assert all(n.startswith("knowgen-tool") for n in pool_threads)
    assert len(pool_threads) <= TOOL_WORKERS
    env.close()
    assert env._tools._executor is None
    env.reset(seed=0)
    obs, *_ = env.step(_calls("")["search"])  # a closed env starts a fresh pool on demand
    assert "timed out" in obs and env._tools._executor is not None
    env.close()


def test_zero_timeout_runs_inline_and_waits(make_env, backends):
    slow_search = Slow(backends["text_search"], delay=0.3)
    env = make_env(tool_timeout_s=0, text_search=slow_search)
    env.reset(seed=0)
    obs, *_, info = env.step(_calls("")["search"])
    assert info["last_action"]["ok"] is True and "--- search result for [capital Lima]" in obs
    assert slow_search.threads == [threading.current_thread().name]
    assert env._tools._executor is None


def test_negative_timeout_is_refused(make_env):
    from knowgen.errors import ConfigError

    with pytest.raises(ConfigError, match="tool_timeout_s"):
        make_env(tool_timeout_s=-1)


def test_in_process_backends_run_inline(make_env, backends):
    """The local world's lookups skip the thread hand-off; others go through the pool."""
    env = make_env(tool_timeout_s=LIMIT)
    env.reset(seed=0)
    env.step(_calls("")["search"])
    assert getattr(backends["text_search"], "in_process", False) is True
    assert env.unwrapped._tools._executor is None  # no pool was ever started
    env.close()

