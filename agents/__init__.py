"""The Gen-Searcher agent: its prompt protocol and the policies that speak it."""
