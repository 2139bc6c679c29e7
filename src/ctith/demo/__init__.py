"""The synthetic demo cohort, its known outcome model and its heterogeneity figure.

- ``presets``: cohort sizes, scanner profiles and protocols, tissues, categories;
- ``patients``: every patient's spec and the clinical table with its outcome, no images;
- ``render``: one patient's CT phases, masks and true habitat map from its spec;
- ``synthetic``: the cohort written as a real one comes (formats, sheets);
- ``truth``: the generator's outcome model, apart from its images;
- ``true_model``: that model scored like a fitted one (the 'True model' rows of Tables S4, S5);
- ``figure``: the habitats the ITH stage finds beside the planted ones.
"""
