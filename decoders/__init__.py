"""Speech decoder: audio-token codes (T, 8) at 12.5 Hz -> 24 kHz waveform.

* :mod:`decoders.mel` -- the one mel front end (``MelConfig``, ``MelFrontEnd``).
* :mod:`decoders.flow` -- conditional flow-matching mel decoder (``FlowDecoder``, ``compute_loss``,
  ``solve_euler``) around the 1-D U-Net of :mod:`decoders.estimator`.
* :mod:`decoders.vocoder` -- HiFi-GAN vocoder on ESPnet's modules (``HiFiGANVocoder``).
* :mod:`decoders.speech_decoder` -- ``SpeechDecoder.synthesize(codes)`` and ``.stream(codes_iter)``.
* :mod:`decoders.train_flow`, :mod:`decoders.train_vocoder` -- the training tasks behind
  ``omni train flow`` / ``omni train vocoder``; :mod:`decoders.losses` -- the losses as pure functions.
"""
