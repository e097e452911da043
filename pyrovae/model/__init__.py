"""The model: networks (encoder, decoder), likelihoods p(x|z), and the VAE that pairs them into a
Pyro ``model``/``guide``. Networks and likelihoods import nothing from the rest of the package."""
