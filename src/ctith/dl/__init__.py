"""2.5D deep learning (Appendices 4 and 7): DL_E and DL_F.

- ``inputs``: one patient's 2.5D input;
- ``network``: the CBAM-ResNet;
- ``device``: where and in what precision it trains;
- ``training``: training, the DL_E and DL_F scores and Grad-CAM;
- ``scale``: DL_E's log-odds and its per-net scale (numpy only);
- ``tables``: each net's own scores and the training patients' tables assembled from them;
- ``figures``: the loss curves (Figure S3) and Grad-CAM maps (Figure S5).
"""
