#define _GNU_SOURCE
/*
 * A custom runtime compiled to one static binary: loops on the runtime API over plain HTTP/1.0
 * and answers each event with its size. Build: cc -static -O2 -o bootstrap bootstrap.c
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static char response[1 << 20];

/* One request to the runtime API; the whole answer (headers and body) lands in `response`. */
static int call(const char *method, const char *path, const char *body) {
  char host[64];
  snprintf(host, sizeof host, "%s", getenv("RUNTIME_API_ADDR"));
  char *colon = strchr(host, ':');
  if (!colon) return -1;
  *colon = '\0';
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
  inet_pton(AF_INET, host, &addr.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) return -1;
  char head[512];
  size_t length = body ? strlen(body) : 0;
  int n = snprintf(head, sizeof head, "%s %s HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", method, path, length);
  if (write(fd, head, (size_t)n) != n || (length && write(fd, body, length) != (ssize_t)length)) return close(fd), -1;
  size_t got = 0;
  ssize_t r;
  while (got < sizeof response - 1 && (r = read(fd, response + got, sizeof response - 1 - got)) > 0) got += (size_t)r;
  response[got] = '\0';
  close(fd);
  return (int)got;
}

int main(void) {
  printf("c runtime starting: %s\n", getenv("RUNTIME_FUNC_NAME"));
  fflush(stdout);
  for (;;) {
    if (call("GET", "/v1/runtime/invocation/request", NULL) <= 0) {
      sleep(1);
      continue;
    }
    char id[128] = "";
    char *header = strcasestr(response, "\r\nx-cff-request-id:");
    if (header) sscanf(header + strlen("\r\nx-cff-request-id:"), " %127[^\r\n]", id);
    char *event = strstr(response, "\r\n\r\n");
    size_t bytes = event ? strlen(event + 4) : 0;
    printf("handling %s (%zu bytes)\n", id, bytes);
    fflush(stdout);
    char answer[256], path[256];
    snprintf(answer, sizeof answer, "{\"statusCode\":200,\"headers\":{\"content-type\":\"application/json\"},\"body\":{\"language\":\"c\",\"eventBytes\":%zu}}", bytes);
    snprintf(path, sizeof path, "/v1/runtime/invocation/response/%s", id);
    call("POST", path, answer);
  }
}
