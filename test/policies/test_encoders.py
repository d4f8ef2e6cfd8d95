import torch

from rlvla_ros.policies.encoders import FEATURE_DIM, MiniLmSentenceEncoder, MobileNetV2, pretrained_mobilenet_v2
from rlvla_ros.policies.encoders.mobilenet_v2 import shipped_weights_path

HONEYCOMB = 599  # ImageNet class indices
WINDOW_SCREEN, WINDOW_SHADE = 904, 905


def _pattern_images() -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(224), torch.arange(224), indexing="ij")
    checkerboard = ((y // 16 + x // 16) % 2).float()
    stripes = ((x // 8) % 2).float()
    return torch.stack([checkerboard, stripes]).unsqueeze(1).expand(-1, 3, -1, -1)


def test_shipped_imagenet_state_dict_loads_strictly():
    state = torch.load(shipped_weights_path(), map_location="cpu", weights_only=True)
    model = MobileNetV2()
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in model.parameters()) == 3_504_872  # torchvision's mobilenet_v2 count


def test_mobilenet_recognises_synthetic_textures_deterministically():
    model = pretrained_mobilenet_v2()
    with torch.no_grad():
        logits = model(model.normalize(_pattern_images()))
        again = model(model.normalize(_pattern_images()))
    assert torch.equal(logits, again)
    assert logits[0].argmax().item() == HONEYCOMB
    assert logits.softmax(-1)[0, HONEYCOMB] > 0.3
    assert logits[1].argmax().item() in (WINDOW_SCREEN, WINDOW_SHADE)


def test_mobilenet_embeds_128px_images_into_1280_features():
    model = pretrained_mobilenet_v2()
    with torch.no_grad():
        features = model.embed(model.normalize(torch.rand(2, 3, 128, 128)))
    assert features.shape == (2, FEATURE_DIM) and (features >= 0).all()  # ReLU6 then average pooling


def test_minilm_matches_sentence_transformers_masked_mean_pooling():
    """Batched, padded, attention-masked mean pooling (the sentence-transformers recipe) gives the same vectors."""
    encoder = MiniLmSentenceEncoder()
    texts = ["stack the blue block on the red block", "lift"]
    tokens = encoder.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.bert(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    reference = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert torch.allclose(encoder(texts), reference, atol=1e-5)


def test_minilm_embeddings_are_unit_norm_and_semantic():
    encoder = MiniLmSentenceEncoder()
    e = encoder(["pick up the red cube", "lift the red block", "open the drawer"])
    assert torch.equal(encoder(["lift the red block"])[0], e[1])
    assert e.shape == (3, 384)
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    similarity = e @ e.T
    assert similarity[0, 1] > similarity[0, 2] + 0.1


def test_minilm_caches_each_distinct_instruction_once():
    encoder = MiniLmSentenceEncoder()
    calls = []
    original = encoder._encode
    encoder._encode = lambda text: calls.append(text) or original(text)
    first = encoder(["stack", "lift", "stack"])
    second = encoder(["lift", "push"])
    assert calls == ["stack", "lift", "push"]
    assert torch.equal(first[1], second[0])
