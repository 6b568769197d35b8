"""The article's walkthrough as scenario files (``NN-name.scenario.yaml``, in the article's order).

A package only so ``pytest --pyargs scenarios.catalog`` finds it in an installed egress-mesh."""
