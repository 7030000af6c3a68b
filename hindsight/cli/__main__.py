"""`python -m hindsight.cli`: the same as the `hindsight` command."""

from hindsight.cli import main

if __name__ == "__main__":
    main()
