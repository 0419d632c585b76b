#include "config/suggest.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace wsgate {
namespace {

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

std::string_view last_segment(std::string_view name) {
    size_t dot = name.rfind('.');
    return dot == std::string_view::npos ? name : name.substr(dot + 1);
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
    if (prefix.size() > s.size()) return false;
    for (size_t i = 0; i < prefix.size(); i++)
        if (lower(s[i]) != lower(prefix[i])) return false;
    return true;
}

// The most edits that still look like a slip of the fingers rather than
// another word: about one in `per` characters, at least one.
size_t allowed(std::string_view word, size_t per) { return std::max<size_t>(1, word.size() / per); }

struct Candidate {
    size_t distance;
    size_t order;
};

}  // namespace

size_t edit_distance(std::string_view a, std::string_view b) {
    // Three rows of the dynamic programme: the swap looks two rows back.
    std::vector<size_t> back2(b.size() + 1), back(b.size() + 1), row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); j++) back[j] = j;
    for (size_t i = 1; i <= a.size(); i++) {
        row[0] = i;
        for (size_t j = 1; j <= b.size(); j++) {
            size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            row[j] = std::min({back[j] + 1, row[j - 1] + 1, back[j - 1] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1]))
                row[j] = std::min(row[j], back2[j - 2] + 1);
        }
        std::swap(back2, back);
        std::swap(back, row);
    }
    return back[b.size()];
}

std::vector<std::string_view> closest_names(std::string_view word,
                                            const std::vector<std::string_view> &names,
                                            size_t max) {
    // A name is close when few edits separate it from the word, or when the
    // word is its start ("tls.cert" for tls.cert_file).
    auto collect = [&](auto part, size_t per) {
        std::vector<Candidate> found;
        std::string_view w = part(word);
        for (size_t i = 0; i < names.size(); i++) {
            std::string_view n = part(names[i]);
            size_t d = edit_distance(w, n);
            if (d <= allowed(w, per) || (w.size() >= 3 && starts_with_nocase(n, w)))
                found.push_back({d, i});
        }
        return found;
    };
    // A section alone ("tls", "auth.jwt."): its first options, in order.
    std::string_view section = word;
    if (!section.empty() && section.back() == '.') section.remove_suffix(1);
    std::vector<std::string_view> in_section;
    for (std::string_view n : names)
        if (!section.empty() && n.size() > section.size() && n[section.size()] == '.' &&
            starts_with_nocase(n, section) && in_section.size() < max)
            in_section.push_back(n);
    if (!in_section.empty()) return in_section;
    // Whole dotted names first (a quarter of the characters may differ: the
    // section is usually right), then the last segments alone.
    std::vector<Candidate> found = collect([](std::string_view n) { return n; }, 4);
    if (found.empty()) found = collect(last_segment, 3);
    std::stable_sort(found.begin(), found.end(),
                     [](const Candidate &x, const Candidate &y) { return x.distance < y.distance; });
    // Only the nearest: "cert_file" means tls.cert_file, not also tls.ca_file.
    std::vector<std::string_view> out;
    for (const Candidate &c : found) {
        if (out.size() == max || c.distance > found.front().distance + 1) break;
        out.push_back(names[c.order]);
    }
    return out;
}

}  // namespace wsgate
