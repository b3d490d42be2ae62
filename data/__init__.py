"""tf.data pipelines: NIfTI CT and MRI (MSD, LiTS), patches, slice folders, dermoscopy,
synthetic generators (lung phantom, nodules, dermoscopy-like lesions)."""
