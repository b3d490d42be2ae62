"""Model builders: U-Net, mU-Net, LeNet-5 (+ siamese), VGG-16 (+ loss-estimator head)."""
