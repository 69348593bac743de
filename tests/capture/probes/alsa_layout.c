/* Prints, as JSON, the sizes/constants capture/alsa.py hard-codes, and the bitfield encodings. */
#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <alsa/asoundlib.h>

#define C(c) printf("\"%s\": %lld,\n", #c, (long long)(c))

int main(void) {
    snd_pcm_audio_tstamp_config_t cfg;
    snd_pcm_audio_tstamp_report_t rep;
    unsigned int w = 0;
    printf("{\n");
    printf("\"sizeof snd_htimestamp_t\": %zu,\n", sizeof(snd_htimestamp_t));
    printf("\"sizeof snd_pcm_audio_tstamp_config_t\": %zu,\n", sizeof cfg);
    printf("\"sizeof snd_pcm_audio_tstamp_report_t\": %zu,\n", sizeof rep);
    memset(&cfg, 0, sizeof cfg);
    cfg.type_requested = 5; cfg.report_delay = 1;
    memcpy(&w, &cfg, sizeof w);
    printf("\"bits config{5,1}\": %u,\n", w);
    memset(&rep, 0, sizeof rep);
    rep.valid = 1; rep.actual_type = 3; rep.accuracy_report = 1; rep.accuracy = 12345;
    memcpy(&w, &rep, sizeof w);
    printf("\"bits report{1,3,1}\": %u,\n", w);
    printf("\"offsetof report.accuracy\": %zu,\n", offsetof(snd_pcm_audio_tstamp_report_t, accuracy));
    C(SND_PCM_STREAM_CAPTURE); C(SND_PCM_FORMAT_S16_LE); C(SND_PCM_ACCESS_RW_INTERLEAVED);
    C(SND_PCM_TSTAMP_NONE); C(SND_PCM_TSTAMP_ENABLE);
    C(SND_PCM_TSTAMP_TYPE_GETTIMEOFDAY); C(SND_PCM_TSTAMP_TYPE_MONOTONIC);
    C(SND_PCM_TSTAMP_TYPE_MONOTONIC_RAW);
    C(SND_PCM_AUDIO_TSTAMP_TYPE_COMPAT); C(SND_PCM_AUDIO_TSTAMP_TYPE_DEFAULT);
    C(SND_PCM_AUDIO_TSTAMP_TYPE_LINK); C(SND_PCM_AUDIO_TSTAMP_TYPE_LINK_ABSOLUTE);
    C(SND_PCM_AUDIO_TSTAMP_TYPE_LINK_ESTIMATED); C(SND_PCM_AUDIO_TSTAMP_TYPE_LINK_SYNCHRONIZED);
    C(SND_PCM_STATE_PREPARED); C(SND_PCM_STATE_RUNNING); C(SND_PCM_STATE_XRUN);
    printf("\"end\": 0\n}\n");
    return 0;
}
