"""Options of the test suite."""


def pytest_addoption(parser):
    parser.addoption("--clip-weights", default=None, metavar="FILE",
                     help="open_clip weights file for the tests marked 'weights' (e.g. a "
                     "ViT-B-32 checkpoint); without it they are skipped")
    parser.addoption("--clip-model", default="ViT-B-32",
                     help="open_clip model name of --clip-weights (default: ViT-B-32)")
