"""2.5D deep learning (Appendices 4 and 7): DL_E and DL_F.

- ``inputs``: one patient's 2.5D input;
- ``network``: the CBAM-ResNet;
- ``device``: where and in what precision it trains;
- ``training``: training, the DL_E and DL_F scores and Grad-CAM;
- ``figures``: the loss curves (Figure S3) and Grad-CAM maps (Figure S5).
"""
