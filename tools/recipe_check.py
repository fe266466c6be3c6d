import sys

from vggkit.commands.recipe_check import main

if __name__ == "__main__":  # the check's runs start processes that import this file again
    sys.exit(main())
