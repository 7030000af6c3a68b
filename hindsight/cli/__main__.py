"""`python -m hindsight.cli`: the same as the `hindsight` command."""

from hindsight.cli import run

if __name__ == "__main__":
    run()
