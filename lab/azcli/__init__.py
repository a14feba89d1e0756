"""The Azure CLI (``az``) against a lab, as an engineer types it on Azure.

    install   the unmodified ``azure-cli`` from PyPI, pinned, in its own venv
              (``.venv-az`` beside ``.venv``: it pins its own SDK versions, 730 MB)
    login     per lab: a config dir in the lab's state folder where the lab's cloud is
              registered and active and ``az login --identity`` is done, like Cloud Shell;
              the exports ``snaplab env`` adds for it

Optional: without ``snaplab setup --az`` nothing here runs and ``snaplab env`` prints
what it printed before.
"""
