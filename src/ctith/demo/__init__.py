"""The synthetic demo cohort, its known outcome model and its heterogeneity figure.

- ``synthetic``: CT phantoms of retroperitoneal sarcoma with habitats, sheets and outcomes;
- ``truth``: the generator's outcome model, apart from its images;
- ``true_model``: that model scored like a fitted one (the 'True model' rows of Tables S4, S5);
- ``figure``: the habitats the ITH stage finds beside the planted ones.
"""
