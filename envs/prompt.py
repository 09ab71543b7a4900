"""The agent's system prompt and the first observation of an episode.

The first observation of :class:`knowgen.envs.SearchGenEnv` is the system prompt
(tools, their arguments, the answer format and the budgets) followed by a
request header and the user's request. :func:`extract_request` recovers the
request from that observation.
"""

from __future__ import annotations

REQUEST_HEADER = "## Image request"
"""Line that separates the system prompt from the user's request."""

_SYSTEM_TEMPLATE = """\
You are a research assistant for an image generator. The user asks for an image \
that depends on facts you may not know: which country, which brand, which flag or \
logo, which exact words. Find those facts with the tools below, collect reference \
images of every entity that must appear, then hand the generator a precise prompt.

# How to write each turn
Start with your reasoning inside <think>...</think>. Then write exactly one of:
- one tool call: <tool_call>{{"name": "<tool>", "arguments": {{...}}}}</tool_call>
- the final answer: <answer>{{...}}</answer>
One tool call per turn; its result comes back wrapped in <tool_response>...</tool_response>.

# Tools
- search(queries: list[str], top_k: int = {top_k}): text search. Sends up to \
{max_queries} queries at once; for each you get lines of the form [Title](url) snippet.
  Example: <tool_call>{{"name": "search", "arguments": {{"queries": ["capital city Lima"]}}}}</tool_call>
- image_search(query: str, top_k: int = {top_k}): image search. Shows at most \
{max_images} images, each under an id such as IMG_001 with its title, url, local_path \
and page_url. An image keeps its id for the whole episode.
  Example: <tool_call>{{"name": "image_search", "arguments": {{"query": "Flag of Peru"}}}}</tool_call>
- browse(url: str, query: str): reads a page (a url from the search results) and \
returns the parts relevant to the query.
  Example: <tool_call>{{"name": "browse", "arguments": {{"url": "https://...", "query": "official language"}}}}</tool_call>
- fetch_image(url: str): loads one picture by its address (an image url you saw \
on a page or in a result) and lists it like image_search does, under an IMG_ id you \
may cite in the answer.
  Example: <tool_call>{{"name": "fetch_image", "arguments": {{"url": "https://.../flag.png"}}}}</tool_call>

# The answer
<answer>{{"gen_prompt": "...", "reference_images": [{{"img_id": "IMG_002", "note": "what it shows"}}]}}</answer>
- gen_prompt describes the whole image. It names the entities you identified and \
refers to the references in the order of their ids as the first reference image, \
the second reference image, and so on, never by id.
- Any text that must be readable in the image goes in double quotes, spelled exactly; \
use double quotes for nothing else.
- reference_images lists 1 to 4 images (at most {max_refs}) from image_search or \
fetch_image results, by id; pick the official picture of each entity, not look-alikes. \
Only the first 3 reach the generator.

# Budget
At most {max_tool_calls} tool calls and {max_turns} turns in all. {final_rule} \
A malformed turn still uses up a turn.
"""
_FORCED_FINAL = ("When the tools run out, or only one turn is left, you must answer at once; a "
                 "turn without an answer at that point ends the episode with no reward.")
_OPEN_FINAL = ("When the tools run out you must answer at once. The episode ends with no "
               "reward if the turns run out before you answer.")


def build_system_prompt(
    max_turns: int = 10, max_tool_calls: int = 8, top_k: int = 5,
    max_queries: int = 5, max_images: int = 5, max_refs: int = 5,
    forced_final_turn: bool = True,
) -> str:
    """The system prompt for the given budgets.

    Args:
        max_turns: Model calls per episode, the final forced answer included.
        max_tool_calls: Tool calls per episode.
        top_k: Default results per search.
        max_queries: Most queries per ``search`` call.
        max_images: Most images per ``image_search``.
        max_refs: Most references an answer may list.
        forced_final_turn: Whether the last turn is reserved for the answer.
    """
    return _SYSTEM_TEMPLATE.format(
        max_turns=max_turns, max_tool_calls=max_tool_calls, top_k=top_k,
        max_queries=max_queries, max_images=max_images, max_refs=max_refs,
        final_rule=_FORCED_FINAL if forced_final_turn else _OPEN_FINAL,
    ).strip()


def build_user_message(request: str) -> str:
    """The user turn: the request header followed by the request."""
    return f"{REQUEST_HEADER}\n{request.strip()}"


def build_first_observation(system_prompt: str, request: str) -> str:
    """System prompt, a blank line, then the user turn."""
    return f"{system_prompt}\n\n{build_user_message(request)}"


def extract_request(observation: str) -> str:
    """The user's request inside a first observation (the whole text when no header)."""
    _head, sep, tail = observation.rpartition(REQUEST_HEADER)
    return tail.strip() if sep else observation.strip()


def _function(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required}}}


TOOL_SCHEMAS: tuple[dict, ...] = (
    _function("search", "Text search; one block of results per query.", {
        "queries": {"type": "array", "items": {"type": "string"},
                    "description": "One to five search queries."},
        "top_k": {"type": "integer", "description": "Results per query (1 to 10)."},
    }, ["queries"]),
    _function("image_search", "Image search; each image is listed under an IMG_### id.", {
        "query": {"type": "string", "description": "What the pictures should show."},
        "top_k": {"type": "integer", "description": "Images to show (at most 5)."},
    }, ["query"]),
    _function("browse", "Read a page and return the parts relevant to the query.", {
        "url": {"type": "string", "description": "Address of a page seen in the results."},
        "query": {"type": "string", "description": "What to look for on the page."},
    }, ["url", "query"]),
    _function("fetch_image", "Load one picture by its address and list it under an IMG_### id.", {
        "url": {"type": "string", "description": "Address of an image seen on a page."},
    }, ["url"]),
)
"""The environment's tools as OpenAI function schemas (also what chat templates take)."""


def split_first_observation(observation: str) -> tuple[str, str]:
    """The instructions and the request of a first observation.

    Returns:
        ``(instructions, request)``; the instructions are empty when the
        observation has no request header.
    """
    head, sep, tail = observation.rpartition(REQUEST_HEADER)
    if not sep:
        return "", observation.strip()
    return head.strip(), tail.strip()
